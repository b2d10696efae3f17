import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxPaths } from '../../activities/sandbox/local.ts';
import { SandboxRequestError, type SandboxdClient } from '../../activities/sandbox/provider.ts';
import { harness, run, type Harness } from './helpers.ts';

let h: Harness;
let client: SandboxdClient;

beforeAll(async () => {
  h = harness();
  ({ client } = await h.provider.ensure({ sessionId: 'files', env: {} }));
});
afterAll(() => h.cleanup());

describe('files', () => {
  it('writes (creating parent dirs), reads back and lists', async () => {
    await client.writeFile('src/deep/hello.txt', 'hello\n');
    await client.writeFile('bin.dat', Buffer.from([0, 255, 1, 254]));
    expect((await client.readFile('src/deep/hello.txt')).toString()).toBe('hello\n');
    expect([...(await client.readFile('bin.dat'))]).toEqual([0, 255, 1, 254]);
    await run(client, 'ln -s src/deep/hello.txt link');
    const root = await client.listFiles('');
    expect(root).toEqual(
      expect.arrayContaining([
        { name: 'src', type: 'dir', size: 0 },
        { name: 'bin.dat', type: 'file', size: 4 },
        { name: 'link', type: 'symlink', size: 0 },
      ]),
    );
    expect(await client.listFiles('src/deep')).toEqual([{ name: 'hello.txt', type: 'file', size: 6 }]);
    // The same file is in the session's workspace on the host and visible to commands.
    expect(readFileSync(path.join(sandboxPaths(h.dataDir, 'files').workspace, 'src/deep/hello.txt'), 'utf8')).toBe('hello\n');
    expect((await run(client, 'cat src/deep/hello.txt')).stdout).toBe('hello\n');
  });

  it('overwrites a file in place', async () => {
    await client.writeFile('over.txt', 'first version, longer');
    await client.writeFile('over.txt', 'second');
    expect((await client.readFile('over.txt')).toString()).toBe('second');
  });

  it('answers 404 with a code for a missing file or directory', async () => {
    const err = await client.readFile('missing.txt').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxRequestError);
    expect(err).toMatchObject({ status: 404, code: 'not_found' });
    await expect(client.listFiles('nowhere')).rejects.toMatchObject({ status: 404, code: 'not_found' });
    await expect(client.readFile('src')).rejects.toMatchObject({ status: 400, code: 'is_directory' });
  });

  it.each([
    ['../outside.txt', 'path_escape'],
    ['src/../../outside.txt', 'path_escape'],
    ['..', 'path_escape'],
    ['/etc/passwd', 'bad_path'],
  ])('rejects %s with 400 %s', async (p, code) => {
    await expect(client.readFile(p)).rejects.toMatchObject({ status: 400, code });
    await expect(client.writeFile(p, 'x')).rejects.toMatchObject({ status: 400, code });
    await expect(client.listFiles(p)).rejects.toMatchObject({ status: 400, code });
  });

  it('allows .. that stays inside the workspace', async () => {
    expect((await client.readFile('src/deep/../deep/hello.txt')).toString()).toBe('hello\n');
  });
});

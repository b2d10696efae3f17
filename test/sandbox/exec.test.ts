import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SandboxRequestError, type ExecChunk, type SandboxdClient } from '../../activities/sandbox/provider.ts';
import { HttpSandboxdClient } from '../../activities/sandbox/sandboxd-client.ts';
import { sandboxPaths } from '../../activities/sandbox/local.ts';
import { harness, run, type Harness } from './helpers.ts';

let h: Harness;
let client: SandboxdClient;

beforeAll(async () => {
  h = harness();
  ({ client } = await h.provider.ensure({ sessionId: 'exec', env: {} }));
});
afterAll(() => h.cleanup());

describe('exec', () => {
  it('streams stdout and stderr while the command runs and returns the exit code', async () => {
    const seen: { chunk: ExecChunk; at: number }[] = [];
    const start = Date.now();
    const result = await client.exec(
      { id: 'stream-1', command: 'echo one; echo warn >&2; sleep 0.4; echo two; exit 7', timeoutMs: 10_000 },
      (chunk) => seen.push({ chunk, at: Date.now() - start }),
    );
    expect(result).toEqual({ exitCode: 7, signal: null, timedOut: false, killed: false, droppedBytes: 0 });
    const text = (stream: string) => seen.filter((s) => s.chunk.stream === stream).map((s) => s.chunk.data).join('');
    expect(text('stdout')).toBe('one\ntwo\n');
    expect(text('stderr')).toBe('warn\n');
    // "one" arrived while the command was still sleeping, not with the exit.
    expect(Date.now() - start - seen[0]!.at).toBeGreaterThanOrEqual(300);
  });

  it('keeps multi-byte characters whole across reads', async () => {
    const r = await run(client, `printf '\\xc3'; sleep 0.1; printf '\\xa9\\n'`);
    expect(r.stdout).toBe('é\n');
  });

  it('timeout kills the whole tree, including setsid and double-forked descendants', async () => {
    const started = Date.now();
    const r = await run(client, 'setsid sleep 300 & echo $! > gc1.pid; (setsid sleep 301 & echo $! > gc2.pid); echo up; sleep 302', 700);
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.stdout).toBe('up\n');
    expect(Date.now() - started).toBeLessThan(10_000); // not the sleeps' 300 s
    const check = await run(client, 'for f in gc1.pid gc2.pid; do test -s $f && ! test -e /proc/$(cat $f) && echo gone; done');
    expect(check.stdout).toBe('gone\ngone\n');
  });

  it('kill stops a running exec and its children', async () => {
    let output = '';
    const running = client.exec({ id: 'kill-1', command: 'sleep 200 & echo $! > k.pid; echo ready; wait', timeoutMs: 60_000 }, (c) => {
      output += c.data;
    });
    await waitFor(() => output.includes('ready'));
    await client.kill('kill-1');
    const r = await running;
    expect(r).toMatchObject({ killed: true, timedOut: false, exitCode: null, signal: 'SIGKILL' });
    expect((await run(client, 'test -e /proc/$(cat k.pid) && echo alive || echo dead')).stdout).toBe('dead\n');
  });

  it('a second client attaching by id gets all output once, then the exit', async () => {
    const command = 'for i in 1 2 3 4 5; do echo line$i; sleep 0.15; done; exit 3';
    let first = '';
    const firstRun = client.exec({ id: 'attach-1', command, timeoutMs: 10_000 }, (c) => (first += c.data));
    await waitFor(() => first.includes('line2'));
    // A fresh connection, as a retried activity on a new worker would have.
    const second = new HttpSandboxdClient({ socketPath: sandboxPaths(h.dataDir, 'exec').socket });
    let replay = '';
    const secondResult = await second.exec({ id: 'attach-1', command, timeoutMs: 10_000 }, (c) => (replay += c.data));
    second.close();
    const expected = 'line1\nline2\nline3\nline4\nline5\n';
    expect(replay).toBe(expected);
    expect(secondResult.exitCode).toBe(3);
    expect((await firstRun).exitCode).toBe(3);
    expect(first).toBe(expected);
    // Attaching after the end replays the finished record; the command did not run again.
    let again = '';
    await client.exec({ id: 'attach-1', command, timeoutMs: 10_000 }, (c) => (again += c.data));
    expect(again).toBe(expected);
  });

  it('aborting stops reading but not the exec, which can be attached to afterwards', async () => {
    const controller = new AbortController();
    let seen = '';
    const command = 'echo a; sleep 0.5; echo b > after-abort.txt; echo b';
    const aborted = client.exec({ id: 'abort-1', command, timeoutMs: 10_000 }, (c) => {
      seen += c.data;
      controller.abort(new Error('turn aborted'));
    }, controller.signal);
    await expect(aborted).rejects.toThrow('turn aborted');
    let replay = '';
    const r = await client.exec({ id: 'abort-1', command, timeoutMs: 10_000 }, (c) => (replay += c.data));
    expect(seen).toBe('a\n');
    expect(replay).toBe('a\nb\n');
    expect(r.exitCode).toBe(0);
    expect((await client.readFile('after-abort.txt')).toString()).toBe('b\n');
  });

  it('rejects a reused id with a different command, and bad requests', async () => {
    await client.exec({ id: 'conflict-1', command: 'true', timeoutMs: 1000 }, () => {});
    const err = await client.exec({ id: 'conflict-1', command: 'false', timeoutMs: 1000 }, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxRequestError);
    expect(err).toMatchObject({ status: 409, code: 'exec_id_conflict' });
    await expect(client.exec({ id: 'bad-1', command: 'true', timeoutMs: 0 }, () => {})).rejects.toMatchObject({ status: 400 });
    await expect(client.kill('no-such-exec')).rejects.toMatchObject({ status: 404, code: 'exec_not_found' });
  });

  it('a client created with env sends it with every exec', async () => {
    const socketPath = sandboxPaths(h.dataDir, 'exec').socket;
    const withEnv = new HttpSandboxdClient({ socketPath }, { env: { EXTRA_VAR: 'from client' } });
    expect((await run(withEnv, 'echo "$EXTRA_VAR"')).stdout).toBe('from client\n');
    withEnv.close();
  });

  it('keeps a bounded output buffer and counts what it dropped', async () => {
    const r = await run(client, 'head -c 6000000 /dev/zero | tr "\\0" a');
    expect(r.exitCode).toBe(0);
    expect(r.droppedBytes).toBeGreaterThan(1_000_000);
    expect(r.stdout.length + r.droppedBytes).toBe(6_000_000);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localSandboxProvider, sandboxPaths, stopAllLocalSandboxes } from '../../activities/sandbox/local.ts';
import { SandboxGoneError } from '../../activities/sandbox/provider.ts';
import { defaultLimits, harness, hostDescendants, run, sandboxPid, type Harness } from './helpers.ts';

let h: Harness;

beforeAll(() => {
  h = harness();
});
afterAll(() => h.cleanup());

function killTree(pid: number) {
  for (const p of [pid, ...hostDescendants(pid)]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone with its parent's namespace
    }
  }
}

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

describe('local sandbox lifecycle', () => {
  it('creates once, then ensure() finds it running (a health check, not a second start)', async () => {
    const first = await h.provider.ensure({ sessionId: 'life-a', env: {} });
    expect(first.started).toBe('created');
    const again = await h.provider.ensure({ sessionId: 'life-a', env: {} });
    expect(again.started).toBe('no');
    expect(await h.provider.state('life-a')).toBe('running');
  });

  it('concurrent ensure() calls, in one process and across providers, start one sandbox', async () => {
    const other = localSandboxProvider({ dataDir: h.dataDir, limits: defaultLimits }); // a second worker
    const results = await Promise.all([
      h.provider.ensure({ sessionId: 'life-b', env: {} }),
      h.provider.ensure({ sessionId: 'life-b', env: {} }),
      other.ensure({ sessionId: 'life-b', env: {} }),
      other.ensure({ sessionId: 'life-b', env: {} }),
    ]);
    expect(results.filter((r) => r.started === 'created')).toHaveLength(1);
    const starts = new Set(await Promise.all(results.map(async (r) => (await r.client.health()).startedAt)));
    expect(starts.size).toBe(1);
    other.close();
  });

  it('after SIGKILL of its whole process tree, the next ensure() recreates it with the workspace intact', async () => {
    const { client } = await h.provider.ensure({ sessionId: 'life-c', env: {} });
    await client.writeFile('notes/keep.txt', 'still here');
    let started = false;
    const inFlight = client.exec({ id: 'long', command: 'echo started; sleep 60', timeoutMs: 60_000 }, () => (started = true));
    while (!started) await new Promise((r) => setTimeout(r, 5));
    const pid = sandboxPid(h.dataDir, 'life-c');
    killTree(pid);
    await expect(inFlight).rejects.toBeInstanceOf(SandboxGoneError);
    await expect(client.health()).rejects.toBeInstanceOf(SandboxGoneError);
    await expect(run(client, 'true')).rejects.toBeInstanceOf(SandboxGoneError);
    expect(await h.provider.state('life-c')).toBe('stopped');
    const again = await h.provider.ensure({ sessionId: 'life-c', env: {} });
    expect(again.started).toBe('recreated');
    expect((await again.client.readFile('notes/keep.txt')).toString()).toBe('still here');
    expect((await run(again.client, 'cat notes/keep.txt')).stdout).toBe('still here');
  });

  it('survives the crash of the worker that started it', async () => {
    const script = path.join(h.dataDir, 'worker.mts');
    writeFileSync(
      script,
      `import { localSandboxProvider } from ${JSON.stringify(path.join(repoRoot, 'activities/sandbox/local.ts'))};
const p = localSandboxProvider({ dataDir: ${JSON.stringify(h.dataDir)}, limits: ${JSON.stringify(defaultLimits)} });
const { client, started } = await p.ensure({ sessionId: 'life-d', env: {} });
await client.writeFile('from-worker.txt', started);
console.log('ready');
setInterval(() => {}, 1000);`,
    );
    // node itself (not the tsx CLI, which would leave its node child behind when killed).
    const worker = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      worker.stdout.on('data', (c: Buffer) => c.toString().includes('ready') && resolve());
      worker.on('exit', (code) => reject(new Error(`worker exited with ${code}`)));
    });
    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    const { client, started } = await h.provider.ensure({ sessionId: 'life-d', env: {} });
    expect(started).toBe('no');
    expect((await client.readFile('from-worker.txt')).toString()).toBe('created');
  });

  it('hibernate keeps the workspace, destroy removes it', async () => {
    const { client } = await h.provider.ensure({ sessionId: 'life-e', env: {} });
    await client.writeFile('a.txt', 'A');
    await h.provider.hibernate('life-e');
    expect(await h.provider.state('life-e')).toBe('stopped');
    await expect(client.health()).rejects.toBeInstanceOf(SandboxGoneError);
    const woken = await h.provider.ensure({ sessionId: 'life-e', env: {} });
    expect(woken.started).toBe('recreated');
    expect((await woken.client.readFile('a.txt')).toString()).toBe('A');
    await h.provider.destroy('life-e');
    expect(await h.provider.state('life-e')).toBe('none');
    expect(existsSync(sandboxPaths(h.dataDir, 'life-e').sessionDir)).toBe(false);
  });

  it('stopAllLocalSandboxes stops every sandbox and leaves no process or cgroup behind', async () => {
    await h.provider.ensure({ sessionId: 'life-f', env: {} });
    const pid = sandboxPid(h.dataDir, 'life-f');
    const cgroups = readFileSync(path.join(sandboxPaths(h.dataDir, 'life-f').runDir, 'cgroups'), 'utf8').trim().split('\n').filter(Boolean);
    await stopAllLocalSandboxes(h.dataDir);
    for (const id of ['life-a', 'life-b', 'life-c', 'life-d', 'life-f']) expect(await h.provider.state(id)).toBe('stopped');
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    for (const dir of cgroups) expect(existsSync(dir)).toBe(false);
  });

  it('gives every sandbox the same read-only /etc stubs, kept once per data dir', async () => {
    const [a, b] = await Promise.all(['life-etc-a', 'life-etc-b'].map((sessionId) => h.provider.ensure({ sessionId, env: {} })));
    for (const { client } of [a!, b!]) {
      const who = await run(client, 'whoami; getent hosts sandbox; cat /etc/passwd > /dev/null && echo readable');
      expect(who.stdout).toMatch(/^root\n127\.0\.0\.1\s+localhost sandbox\nreadable\n$/);
      const write = await run(client, 'echo x >> /etc/hosts');
      expect(write.exitCode).not.toBe(0);
      expect(write.stderr).toMatch(/Read-only file system/);
    }
    const etcDir = sandboxPaths(h.dataDir, 'life-etc-a').etcDir;
    expect(etcDir).toBe(sandboxPaths(h.dataDir, 'life-etc-b').etcDir);
    expect(readFileSync(path.join(etcDir, 'hosts'), 'utf8')).toContain('localhost sandbox');
    expect(existsSync(path.join(sandboxPaths(h.dataDir, 'life-etc-a').runDir, 'etc'))).toBe(false);
  });

  it('works under a data dir too deep for a unix socket path', async () => {
    const deep = harness(defaultLimits, path.join(h.dataDir, 'x'.repeat(60), 'y'.repeat(60)));
    try {
      const { client, started } = await deep.provider.ensure({ sessionId: 'deep', env: {} });
      expect(started).toBe('created');
      expect((await run(client, 'echo deep')).stdout).toBe('deep\n');
    } finally {
      await deep.cleanup();
    }
  });

  it('rejects a session id that is not a plain name', async () => {
    await expect(h.provider.ensure({ sessionId: '../escape', env: {} })).rejects.toThrow('invalid session id');
  });

  it('reports a clear error when the sandbox cannot start', async () => {
    const broken = localSandboxProvider({ dataDir: h.dataDir, limits: defaultLimits, bwrapBin: '/nonexistent/bwrap' });
    await expect(broken.ensure({ sessionId: 'broken', env: {} })).rejects.toThrow(/failed to start \(exit 1\).*\/nonexistent\/bwrap/);
    broken.close();
  });
});

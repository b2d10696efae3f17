import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxPaths } from '../../activities/sandbox/local.ts';
import type { SandboxdClient } from '../../activities/sandbox/provider.ts';
import { harness, run, type Harness } from './helpers.ts';

const MiB = 2 ** 20;
const limits = { memoryBytes: 128 * MiB, cpuSeconds: 1, pids: 64, fileBytes: 5 * MiB };
let h: Harness;
let client: SandboxdClient;

beforeAll(async () => {
  h = harness(limits);
  ({ client } = await h.provider.ensure({ sessionId: 'limits', env: {} }));
});
afterAll(() => h.cleanup());

function cgroupFile(controller: string, file: string): string {
  const dirs = readFileSync(path.join(sandboxPaths(h.dataDir, 'limits').runDir, 'cgroups'), 'utf8').split('\n');
  const dir = dirs.find((d) => d.includes(`/${controller}/`));
  if (!dir) throw new Error(`no ${controller} cgroup for the sandbox (is /sys/fs/cgroup/${controller} writable?)`);
  return readFileSync(path.join(dir, file), 'utf8').trim();
}

describe('resource limits', () => {
  it('puts the sandbox in its own pids and memory cgroups', () => {
    expect(cgroupFile('pids', 'pids.max')).toBe('64');
    expect(Number(cgroupFile('memory', 'memory.limit_in_bytes'))).toBe(128 * MiB);
  });

  it('contains a fork bomb with the pids limit, and the timeout cleans it up', async () => {
    const r = await run(client, 'bomb() { bomb | bomb & }; bomb; sleep 100', 3_000);
    expect(r.timedOut).toBe(true);
    expect(Number(cgroupFile('pids', 'pids.peak'))).toBeLessThanOrEqual(64);
    expect(Number(cgroupFile('pids', 'pids.events').split(' ')[1])).toBeGreaterThan(0); // forks were refused
    expect((await run(client, 'echo alive')).stdout).toBe('alive\n');
    expect(Number(cgroupFile('pids', 'pids.current'))).toBeLessThan(10);
  });

  it('kills a large allocation with the memory limit', async () => {
    const r = await run(client, `python3 -c "b = bytearray(400 * 1024 * 1024); print('allocated')"`);
    expect(r.stdout).not.toContain('allocated');
    expect(r.signal).toBe('SIGKILL');
    expect((await run(client, 'echo alive')).stdout).toBe('alive\n');
  });

  it('stops a big file at the file size limit', async () => {
    const r = await run(client, 'head -c 20000000 /dev/zero > big.bin; echo "status $?"');
    expect(r.stdout).toBe(`status ${128 + 25}\n`); // SIGXFSZ
    expect(statSync(path.join(sandboxPaths(h.dataDir, 'limits').workspace, 'big.bin')).size).toBe(5 * MiB);
  });

  it('stops a CPU hog at the CPU time limit', async () => {
    // One CPU-second can take several wall-clock seconds on a busy machine; the timeout is a backstop.
    const r = await run(client, 'while :; do :; done', 50_000);
    expect(r.timedOut).toBe(false);
    expect(r.signal).toBe('SIGXCPU');
  });
});

describe('resource limits without writable cgroups', () => {
  it('still starts, says why in the log, and limits memory per process with RLIMIT_DATA', async () => {
    const fallback = harness(limits, undefined, { cgroupRoot: '/proc/no-cgroups-here' });
    try {
      const { client: c } = await fallback.provider.ensure({ sessionId: 'fallback', env: {} });
      const paths = sandboxPaths(fallback.dataDir, 'fallback');
      expect(readFileSync(paths.log, 'utf8')).toContain('cgroups unavailable');
      expect(readFileSync(path.join(paths.runDir, 'cgroups'), 'utf8').trim()).toBe('');
      const r = await run(c, `python3 -c "b = bytearray(400 * 1024 * 1024); print('allocated')"`);
      expect(r.stdout).not.toContain('allocated');
      expect(r.stderr).toContain('MemoryError');
      expect((await run(c, 'echo alive')).stdout).toBe('alive\n');
    } finally {
      await fallback.cleanup();
    }
  });
});

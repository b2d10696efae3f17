import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxdClient } from '../../activities/sandbox/provider.ts';
import { harness, run, type Harness } from './helpers.ts';

let h: Harness;
let a: SandboxdClient;
let b: SandboxdClient;
const specEnv = { AGENT_NAME: 'tester', GITHUB_TOKEN: 'stub_github_abc', WITH_SPACE: 'a b  c' };

beforeAll(async () => {
  process.env.BERTH_PLATFORM_ONLY = 'must-not-leak';
  h = harness();
  ({ client: a } = await h.provider.ensure({ sessionId: 'iso-a', env: specEnv }));
  ({ client: b } = await h.provider.ensure({ sessionId: 'iso-b', env: {} }));
});
afterAll(async () => {
  delete process.env.BERTH_PLATFORM_ONLY;
  await h.cleanup();
});

describe('isolation', () => {
  it("a session cannot see another session's workspace", async () => {
    await a.writeFile('secret-of-a.txt', 'a-only');
    // Every file but /proc, /dev (device nodes) and the host's read-only /usr, which holds no data dir.
    const r = await run(b, `ls -a /workspace; find / \\( -path /proc -o -path /dev -o -path /usr \\) -prune -o -type f -print 2>/dev/null | xargs grep -ls a-only`);
    expect(r.stdout).not.toContain('secret-of-a');
    expect(r.stdout).not.toContain('a-only');
    expect(r.stdout.trim().split('\n').sort()).toEqual(['.', '..']);
  });

  it("a session cannot see another session's processes", async () => {
    let started = false;
    const long = a.exec({ id: 'iso-long', command: 'echo go; exec sleep 123', timeoutMs: 30_000 }, () => (started = true));
    while (!started) await new Promise((r) => setTimeout(r, 10));
    const seen = await run(b, 'cat /proc/[0-9]*/cmdline | tr "\\0" " "');
    expect(seen.stdout).not.toContain('sleep 123');
    expect((await run(a, 'cat /proc/[0-9]*/cmdline | tr "\\0" " "')).stdout).toContain('sleep 123');
    // Only the sandbox's own few processes exist: bwrap's init, sandboxd, this exec's reaper, bash, cat…
    const count = await run(b, 'ls -d /proc/[0-9]* | wc -l');
    expect(Number(count.stdout)).toBeLessThan(10);
    await a.kill('iso-long');
    await long;
  });

  it('cannot read host files outside the read-only binds', async () => {
    const r = await run(b, `for p in /root /home /etc/shadow /etc/ssl/private ${process.cwd()} /work /proc/1/root/root /sys/fs/cgroup; do test -e "$p" && echo "visible $p"; done; cat /proc/1/cmdline | tr "\\0" " "; echo; touch /usr/x 2>&1 || true`);
    expect(r.stdout).not.toContain('visible');
    expect(r.stdout).toContain('bwrap'); // pid 1 is the sandbox's own init, not the host's
    expect(r.stderr + r.stdout).toContain('Read-only file system');
  });

  it("the sandbox holds no unix socket of its own API, so it cannot redirect the worker's connections", async () => {
    const r = await run(b, 'find / -path /proc -prune -o -type s -print 2>/dev/null');
    expect(r.stdout).toBe('');
  });

  it('has no network: only lo, and no connection to a host port on 127.0.0.1', async () => {
    let accepted = 0;
    const server = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const ifaces = await run(b, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
      expect(ifaces.stdout.trim()).toBe('lo');
      const connect = await run(b, `timeout 5 bash -c 'echo hi > /dev/tcp/127.0.0.1/${port}' && echo connected || echo failed`);
      expect(connect.stdout).toContain('failed');
      expect(accepted).toBe(0);
      const dns = await run(b, `timeout 5 bash -c 'echo > /dev/tcp/1.1.1.1/443' 2>&1 && echo connected || echo failed`);
      expect(dns.stdout).toContain('failed');
    } finally {
      server.close();
    }
  });

  it('the environment is exactly the spec env plus PATH, HOME, LANG and TERM', async () => {
    const r = await run(a, 'env -0');
    const env = Object.fromEntries(
      r.stdout.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    // bash itself adds PWD, SHLVL and _ for the commands it runs.
    for (const k of ['PWD', 'SHLVL', '_']) delete env[k];
    expect(env).toEqual({
      ...specEnv,
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/workspace',
      LANG: 'C.UTF-8',
      TERM: 'dumb',
    });
    expect((await run(a, 'hostname; pwd')).stdout).toBe('sandbox\n/workspace\n');
  });

  it('rejects an invalid environment variable name', async () => {
    await expect(h.provider.ensure({ sessionId: 'iso-bad-env', env: { 'BAD-NAME': 'x' } })).rejects.toThrow('invalid sandbox environment variable name');
  });
});

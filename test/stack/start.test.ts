// `npx tsx bin/start.ts` as a user runs it: a temp data dir and non-default ports, the whole stack
// up with /readyz answering, the admin key printed once and reused, a crashed worker restarted,
// after SIGTERM not one of its processes left in the process table, and after a SIGKILL of the
// supervisor nothing that keeps the next start from working.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../bin/stack/berth.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { vaultRunDir } from '../../vault-proxy/paths.ts';

const marker = `berth-e2e-${randomBytes(4).toString('hex')}`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-start-test-'));
fs.chmodSync(tmp, 0o755); // Postgres runs as an unprivileged user and must traverse it.
const dataDir = path.join(tmp, 'data');
const running: ChildProcess[] = [];

/** Every process that inherited this test's marker variable: the stack and everything it started. */
function markedProcesses(): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      // Sandboxes run with a cleared environment, but their command lines name the data dir.
      if (fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes(`BERTH_E2E_MARKER=${marker}`) || cmdline.includes(dataDir)) {
        found.push(`${pid} ${cmdline}`);
      }
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
  return found;
}

afterAll(() => {
  for (const child of running) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already stopped
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(vaultRunDir(dataDir), { recursive: true, force: true }); // the vault proxy's sockets, outside the data dir
});

async function runStack(env: NodeJS.ProcessEnv, until: RegExp, timeoutMs: number) {
  const child = spawn('npx', ['tsx', 'bin/start.ts'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const t0 = Date.now();
  while (!until.test(output)) {
    if (child.exitCode !== null) throw new Error(`bin/start.ts exited early:\n${output}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`bin/start.ts not up after ${timeoutMs} ms:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, exited, output: () => output, startMs: Date.now() - t0 };
}

/** The process running bin/start.ts: the innermost of those in its command line (npx runs tsx, which runs node). */
function supervisorPid(): number {
  const ours = markedProcesses().filter((p) => p.includes('bin/start.ts')).map((p) => Number(p.split(' ')[0]));
  const parentOf = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
  const innermost = ours.filter((pid) => !ours.some((other) => parentOf(other) === pid));
  expect(innermost).toHaveLength(1);
  return innermost[0]!;
}

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** npx and its shell die of the signal themselves; what matters is that the stack stops in order and entirely. */
async function stopped(run: Awaited<ReturnType<typeof runStack>>): Promise<void> {
  await run.exited;
  await waitFor(() => markedProcesses().length === 0, 60_000, 'every stack process to exit').catch(() => {});
  expect(markedProcesses()).toEqual([]);
  expect(run.output()).toMatch(/postgres\s+stopped/);
}

describe('npm start (bin/start.ts)', () => {
  it('starts the whole stack, restarts a crashed worker, and leaves nothing behind on SIGTERM or its own SIGKILL', { timeout: 600_000 }, async () => {
    const ports = {
      BERTH_POSTGRES_PORT: await freePort(), BERTH_TEMPORAL_PORT: await freePort(), BERTH_TEMPORAL_UI_PORT: await freePort(),
      BERTH_GATEWAY_PORT: await freePort(), BERTH_MODEL_SERVER_PORT: await freePort(), PORT: await freePort(),
    };
    const { BERTH_ADMIN_API_KEY: _unset, LITELLM_GATEWAY_URL: _local, DATABASE_URL: _embedded, ...inherited } = process.env;
    const env: NodeJS.ProcessEnv = {
      ...inherited, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
      BERTH_DATA_DIR: dataDir, BERTH_E2E_MARKER: marker, NO_COLOR: '1',
    };
    const web = `http://127.0.0.1:${ports.PORT}`;

    // First run: everything is created.
    const first = await runStack(env, /Berth is up/, 300_000);
    const readyz = await fetch(`${web}/readyz`);
    expect(readyz.status).toBe(200);
    const keyFile = path.join(dataDir, 'admin-api-key');
    const adminKey = fs.readFileSync(keyFile, 'utf8').trim();
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(first.output()).toContain(adminKey);
    expect(first.output()).toContain(`http://127.0.0.1:${ports.BERTH_TEMPORAL_UI_PORT}`);
    expect(first.output()).toMatch(/gateway\s+ready\s+\S+ \(routes berth-demo\b/);
    for (const log of ['postgres', 'temporal', 'gateway', 'model-server', 'worker', 'web']) {
      expect(fs.existsSync(path.join(dataDir, 'logs', `${log}.log`))).toBe(true);
    }
    // The admin key works, and the demo model runs a command in a sandbox through the local gateway.
    const api = async (p: string, body: unknown) => {
      const res = await fetch(`${web}${p}`, { method: 'POST', headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBeLessThan(300);
      return (await res.json()) as Record<string, unknown>;
    };
    const agent = await api('/v1/agents', { name: 'demo', model: 'berth-demo' });
    const session = await api('/v1/sessions', { agent_id: agent.id });
    const reply = await api(`/v1/sessions/${session.id}/messages?wait=true`, { content: '$ echo sandbox says hi' });
    expect(reply.text).toContain('sandbox says hi');
    expect(markedProcesses().some((p) => p.includes(path.join(dataDir, 'sandboxes')))).toBe(true);

    // A crashed worker comes back, and the restart is logged.
    const workerPid = Number(first.output().match(/worker\s+ready\s+pid (\d+)/)![1]);
    process.kill(workerPid, 'SIGKILL');
    await waitFor(() => /worker\s+restarted/.test(first.output()), 120_000, 'the worker restart');
    expect(fs.readFileSync(path.join(dataDir, 'logs', 'worker.log'), 'utf8')).toMatch(/supervisor: exited \(signal SIGKILL\), restart #1/);

    process.kill(-first.child.pid!, 'SIGTERM');
    await stopped(first);

    // Second run on the same data dir: nothing to initialise, the key is reused and not printed.
    const second = await runStack(env, /Berth is up/, 300_000);
    expect(second.output()).toMatch(/migrations\s+ready\s+0 applied/);
    expect(second.output()).not.toContain(adminKey);
    expect(fs.readFileSync(keyFile, 'utf8').trim()).toBe(adminKey);
    expect((await fetch(`${web}/readyz`)).status).toBe(200);
    console.log(`stack start: first run ${first.startMs} ms, second run ${second.startMs} ms`);

    // The supervisor itself killed, with no chance to stop anything: its children go down with it,
    // and the next start stops the sandbox it left, so nothing of that run holds a port or lingers.
    const again = await api(`/v1/sessions/${session.id}/messages?wait=true`, { content: '$ echo still here' });
    expect(again.text).toContain('still here');
    const sandboxes = path.join(dataDir, 'sandboxes');
    expect(markedProcesses().some((p) => p.includes(sandboxes))).toBe(true);
    process.kill(supervisorPid(), 'SIGKILL');
    await second.exited;
    await waitFor(() => markedProcesses().every((p) => p.includes(sandboxes)), 60_000, 'the stack to go down with its supervisor');
    const third = await runStack(env, /Berth is up/, 300_000);
    expect(markedProcesses().filter((p) => p.includes(sandboxes))).toEqual([]);
    const get = async () => (await fetch(`${web}/v1/sessions/${session.id}`, { headers: { authorization: `Bearer ${adminKey}` } })).json();
    await expect.poll(get, { timeout: 30_000 }).toMatchObject({ status: 'hibernated', sandbox_state: 'hibernated' });

    process.kill(-third.child.pid!, 'SIGINT');
    await stopped(third);
  });
});

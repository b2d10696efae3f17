// Helpers for test files: a per-file environment, the worker and web as child processes (so a test
// can SIGKILL them) with logs in test/.artifacts/, the scripted model's control endpoints, and
// Temporal stop/start through the global setup's control port.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { inject } from 'vitest';
import { ROOT, startWeb as spawnWeb, startWorker as spawnWorker } from '../../bin/stack/berth.ts';
import type { ChildHandle } from '../../bin/stack/child.ts';
import { freePort } from '../../bin/stack/ports.ts';
import type { ChatRequest } from '../../bin/stack/model-types.ts';
import type { Script } from '../../bin/stack/scripted-model.ts';

export const ARTIFACTS = path.join(ROOT, 'test/.artifacts');
export const TEST_ADMIN_KEY = 'test-admin-key-0123456789abcdef';
/** The vault key (lib/vault.ts) of every test process: 32 fixed bytes, base64. */
export const TEST_VAULT_KEY = `test:${Buffer.alloc(32, 7).toString('base64')}`;

export interface TestEnv {
  env: NodeJS.ProcessEnv;
  dataDir: string;
  taskQueue: string;
  /** Prefix for this file's log files in test/.artifacts/. */
  name: string;
}

/** The environment a Berth process needs against the shared test stack, with its own task queue and data dir. */
export function testEnv(name: string, extra: NodeJS.ProcessEnv = {}): TestEnv {
  const suffix = randomBytes(3).toString('hex');
  const taskQueue = `test-${name}-${suffix}`;
  const dataDir = path.join(inject('stackDir'), 'files', `${name}-${suffix}`);
  fs.mkdirSync(dataDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    BERTH_DATA_DIR: dataDir,
    DATABASE_URL: inject('databaseUrl'),
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_NAMESPACE: inject('temporalNamespace'),
    TEMPORAL_UI_URL: inject('temporalUiUrl'),
    BERTH_TASK_QUEUE: taskQueue,
    LITELLM_GATEWAY_URL: inject('gatewayUrl'),
    LITELLM_API_KEY: inject('gatewayApiKey'),
    BERTH_ADMIN_API_KEY: TEST_ADMIN_KEY,
    BERTH_VAULT_KEY: TEST_VAULT_KEY,
    LOG_LEVEL: 'debug',
    ...extra,
  };
  return { env, dataDir, taskQueue, name: `${name}-${suffix}` };
}

const logPath = (t: TestEnv, what: string) => path.join(ARTIFACTS, `${t.name}.${what}.log`);

/** Starts `tsx bin/worker.ts` and waits until it polls its task queue. */
export function startWorker(t: TestEnv, extra: NodeJS.ProcessEnv = {}): Promise<ChildHandle> {
  return spawnWorker({ env: { ...t.env, ...extra }, logPath: logPath(t, 'worker') });
}

/** Starts `tsx bin/web.ts` on a free port and waits for /readyz. */
export async function startWeb(t: TestEnv, extra: NodeJS.ProcessEnv = {}): Promise<ChildHandle & { url: string }> {
  const port = await freePort();
  return spawnWeb({ env: { ...t.env, PORT: String(port), ...extra }, port, logPath: logPath(t, 'web') });
}

const modelRoot = () => inject('modelServerUrl').replace(/\/v1$/, '');

/** Tells the scripted model what to answer for `model` (use the agent model `scripted/<model>`). */
export async function registerScript(model: string, script: Script): Promise<void> {
  const res = await fetch(`${modelRoot()}/__scripts/${encodeURIComponent(model)}`, { method: 'PUT', body: JSON.stringify(script) });
  if (res.status !== 204) throw new Error(`registerScript(${model}): ${res.status} ${await res.text()}`);
}

/** Every request the scripted model received for `model`, oldest first. */
export async function modelRequests(model: string): Promise<ChatRequest[]> {
  const res = await fetch(`${modelRoot()}/__requests/${encodeURIComponent(model)}`);
  return (await res.json()) as ChatRequest[];
}

async function control(action: 'stop' | 'start'): Promise<void> {
  const res = await fetch(`${inject('stackControlUrl')}/temporal/${action}`, { method: 'POST' });
  if (res.status !== 204) throw new Error(`temporal ${action}: ${res.status} ${await res.text()}`);
}
/** Stops the shared Temporal dev server (its SQLite file stays). */
export const stopTemporal = () => control('stop');
/** Starts it again on the same ports and SQLite file; resolves once the namespace answers. */
export const startTemporal = () => control('start');

// `npm start`: the embedded stack. Postgres → migrations → Temporal → model server + LiteLLM gateway
// (unless LITELLM_GATEWAY_URL names one) → worker + web, supervised; Ctrl-C or SIGTERM stops it all
// in reverse order. Each process logs to <dataDir>/logs/<name>.log (rotated past BERTH_LOG_MAX_MB);
// the README lists them.
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../lib/config.ts';
import { killRemainingChildren } from './stack/child.ts';
import { ROOT, startWeb, startWorker } from './stack/berth.ts';
import { parseStackConfig } from './stack/config.ts';
import { status } from './stack/console.ts';
import { startGateway } from './stack/gateway.ts';
import { rotateLogs } from './stack/log-rotation.ts';
import { migrate } from './stack/migrations.ts';
import { startModelServer } from './stack/model-server.ts';
import { startPostgres } from './stack/postgres.ts';
import { storedSecret } from './stack/secrets.ts';
import { startVaultProxy } from './stack/vault-proxy.ts';
import { ensureDevVaultKey } from '../lib/vault.ts';
import { Supervisor } from './stack/supervisor.ts';
import { startTemporal } from './stack/temporal.ts';

if (fs.existsSync(path.join(ROOT, '.env'))) process.loadEnvFile(path.join(ROOT, '.env'));
const config = loadConfig();
const stack = parseStackConfig(process.env);
const dataDir = config.dataDir;
const logs = path.join(dataDir, 'logs');
const logFile = (name: string) => path.join(logs, `${name}.log`);
const shown = (p: string) => (path.relative(process.cwd(), p).startsWith('..') ? p : path.relative(process.cwd(), p));
fs.mkdirSync(logs, { recursive: true });
/** How often the logs' sizes are checked (bin/stack/log-rotation.ts). */
const LOG_CHECK_MS = 60_000;

const supervisor = new Supervisor();
let stopping: Promise<void> | undefined;
/** Stops everything once, then exits; later calls (a second signal) wait for the same stop. */
async function shutdown(code: number): Promise<never> {
  stopping ??= (async () => {
    status('berth', 'info', 'stopping…');
    await supervisor.stopAll();
    await killRemainingChildren();
  })();
  await stopping;
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  // A Ctrl-C reaches tsx too, which relays it: the second copy just waits for the first.
  process.on(sig, () => void shutdown(0));
}

async function step<T extends { pid: number }>(name: string, detail: (h: T) => string, start: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  status(name, 'starting');
  const handle = await start();
  status(name, 'ready', `${detail(handle)}  (${((Date.now() - t0) / 1000).toFixed(1)} s, log ${shown(logFile(name))})`);
  return handle;
}

try {
  const t0 = Date.now();
  // LiteLLM takes the longest to boot (Python imports), so it starts alongside Postgres and Temporal.
  const [{ pg, temporal }, gateway] = await Promise.all([startDataServices(), startModels()]);
  const admin = config.BERTH_ADMIN_API_KEY
    ? { value: config.BERTH_ADMIN_API_KEY, created: false, path: '' }
    : storedSecret(dataDir, 'admin-api-key', 'berth_admin_');
  // A run that died without stopping (SIGKILL) took its children with it (child.ts) but not its
  // sandboxes, which outlive workers: stop them as that run would have, before a worker looks.
  await stopSandboxes();
  supervisor.addStoppable({ name: 'sandboxes', stop: stopSandboxes });

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BERTH_DATA_DIR: dataDir,
    DATABASE_URL: pg.url,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    TEMPORAL_UI_URL: temporal.uiUrl,
    LITELLM_GATEWAY_URL: gateway.url,
    LITELLM_API_KEY: gateway.apiKey,
    BERTH_ADMIN_API_KEY: admin.value,
    PORT: String(config.PORT),
    // The embedded install's vault key (generated once under the data dir) unless one is configured.
    ...(config.BERTH_VAULT_KEY || config.BERTH_VAULT_KEYS ? {} : { BERTH_VAULT_KEY: ensureDevVaultKey(dataDir) }),
  };
  // Before the worker: a sandbox started without the proxy would have no way out.
  await step('vault-proxy', (h) => `pid ${h.pid}, session sockets in ${h.runDir}`, () =>
    supervisor.add('vault-proxy', () => startVaultProxy({ env, logPath: logFile('vault-proxy') })),
  );
  await Promise.all([
    step('worker', (h) => `pid ${h.pid}, task queue ${config.BERTH_TASK_QUEUE}`, () =>
      supervisor.add('worker', () => startWorker({ env, logPath: logFile('worker') })),
    ),
    step('web', (h) => `http://127.0.0.1:${config.PORT}, pid ${h.pid}`, () =>
      supervisor.add('web', () => startWeb({ env, port: config.PORT, logPath: logFile('web') })),
    ),
  ]);

  const api = `http://${config.BERTH_HOST}:${config.PORT}`;
  console.log(`\nBerth is up in ${((Date.now() - t0) / 1000).toFixed(1)} s.`);
  console.log(`  API          ${api}/v1   (OpenAPI: ${api}/v1/openapi.json)`);
  console.log(`  Dashboard    ${api}/`);
  console.log(`  Temporal UI  ${temporal.uiUrl}`);
  console.log(`  Logs         ${shown(logs)}/`);
  if (admin.created) {
    console.log(`  Admin key    ${admin.value}`);
    console.log(`               (shown once; stored in ${shown(admin.path)}, mode 0600)`);
  } else if (admin.path) {
    console.log(`  Admin key    in ${shown(admin.path)}`);
  } else {
    console.log('  Admin key    BERTH_ADMIN_API_KEY from the environment');
  }
  console.log('Ctrl-C stops everything.\n');
  setInterval(() => {
    try {
      for (const file of rotateLogs(logs, stack.BERTH_LOG_MAX_MB * 1024 * 1024)) status('logs', 'info', `rotated ${shown(file)} (the previous part is ${shown(file)}.1)`);
    } catch (err) {
      status('logs', 'failed', `could not rotate the logs in ${shown(logs)}: ${(err as Error).message}`);
    }
  }, LOG_CHECK_MS).unref();
} catch (err) {
  status('berth', 'failed', (err as Error).message);
  await shutdown(1);
}

async function startDataServices() {
  const pg = await step('postgres', (h) => `127.0.0.1:${h.port}`, () =>
    supervisor.add('postgres', () => startPostgres({ dataDir, port: stack.BERTH_POSTGRES_PORT, logPath: logFile('postgres') })),
  );
  const migrated = await migrate(pg.url);
  status('migrations', 'ready', `${migrated.applied.length} applied, ${migrated.alreadyApplied.length} already applied`);
  const temporal = await step('temporal', (h) => `${h.address}, Web UI ${h.uiUrl}`, () =>
    supervisor.add('temporal', () =>
      startTemporal({ dataDir, port: stack.BERTH_TEMPORAL_PORT, uiPort: stack.BERTH_TEMPORAL_UI_PORT, namespace: config.TEMPORAL_NAMESPACE, logPath: logFile('temporal') }),
    ),
  );
  return { pg, temporal };
}

/** The gateway Berth talks to: LITELLM_GATEWAY_URL, or a local LiteLLM in front of the demo model. */
async function startModels(): Promise<{ url: string; apiKey?: string }> {
  if (config.LITELLM_GATEWAY_URL) {
    status('gateway', 'skipped', `using LITELLM_GATEWAY_URL=${config.LITELLM_GATEWAY_URL}`);
    return { url: config.LITELLM_GATEWAY_URL, apiKey: config.LITELLM_API_KEY };
  }
  const model = await step('model-server', (h) => `${h.url} (berth-demo, a demo model)`, () =>
    startModelServer({ port: stack.BERTH_MODEL_SERVER_PORT, scripted: false, chunkDelayMs: 15, logPath: logFile('model-server') }),
  );
  supervisor.addStoppable(model);
  // Its routes: the demo model, and each provider whose key is set (gateway-config.ts).
  return step('gateway', (h) => `${h.url} (routes ${h.routes.join(', ')})`, () =>
    supervisor.add('gateway', () => startGateway({ dataDir, port: stack.BERTH_GATEWAY_PORT, modelServerUrl: model.url, logPath: logFile('gateway') })),
  );
}

async function stopSandboxes(): Promise<void> {
  const { stopAllLocalSandboxes } = await import('../activities/sandbox/local.ts');
  await stopAllLocalSandboxes(dataDir);
}

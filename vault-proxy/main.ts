// The vault proxy process (`npm run vault-proxy`; `npm start` supervises it; in Kubernetes, the
// sidecar of every sandbox pod). Local or pod mode: see modes.ts and vault-proxy/README.md. The local
// mode reads sessions from Postgres and needs the vault key (without one it stops with a message
// naming BERTH_VAULT_KEY); the pod mode needs neither: the worker pushes each session's view.
import { loadConfig } from '../lib/config.ts';
import { closeDb } from '../lib/db.ts';
import { createLogger } from '../lib/log.ts';
import { VaultKeyError, keyringFromEnv } from '../lib/vault.ts';
import { ModeConfigError, startLocalMode, startPodMode } from './modes.ts';
import { InterceptionQueue } from './queue.ts';
import { DbRecorder } from './record.ts';
import { SessionDirectory } from './sessions.ts';
import { createUpstreamAgents } from './upstream.ts';

const config = loadConfig();
const log = createLogger('vault-proxy');

function configError(message: string): never {
  console.error(`vault-proxy: ${message}`);
  process.exit(78); // EX_CONFIG, as lib/config.ts
}

const agents = createUpstreamAgents(config.VAULT_EXTRA_CA_FILE);

async function local() {
  let keyring;
  try {
    keyring = keyringFromEnv(process.env);
  } catch (err) {
    if (!(err instanceof VaultKeyError)) throw err;
    configError(err.message);
  }
  const recorder = new DbRecorder(log);
  const directory = new SessionDirectory(keyring, { url: config.LITELLM_GATEWAY_URL, apiKey: config.LITELLM_API_KEY });
  const service = await startLocalMode(config, { recorder, log, ...agents, load: (id) => directory.load(id), forget: (id) => directory.forget(id) });
  return {
    stop: async () => {
      await service.stop();
      await recorder.flush();
      await closeDb();
    },
  };
}

let service: { stop(): Promise<void> };
try {
  const listen = config.VAULT_PROXY_LISTEN;
  service = listen ? await startPodMode(config, listen, { recorder: new InterceptionQueue(log), log, ...agents }) : await local();
} catch (err) {
  if (!(err instanceof ModeConfigError)) throw err;
  configError(err.message);
}

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal: sig });
    void service.stop().finally(() => process.exit(0));
  });
}

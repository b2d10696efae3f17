// The vault proxy process (`npm run vault-proxy`; `npm start` supervises it; in Kubernetes, the
// sidecar of every sandbox pod). Needs the vault key: without one it stops with a message naming
// BERTH_VAULT_KEY. Local or pod mode: see modes.ts and vault-proxy/README.md.
import { loadConfig } from '../lib/config.ts';
import { closeDb } from '../lib/db.ts';
import { createLogger } from '../lib/log.ts';
import { VaultKeyError, keyringFromEnv } from '../lib/vault.ts';
import { ModeConfigError, startLocalMode, startPodMode, type ModeDeps } from './modes.ts';
import { DbRecorder } from './record.ts';
import { SessionDirectory } from './sessions.ts';
import { createUpstreamAgents } from './upstream.ts';

const config = loadConfig();
const log = createLogger('vault-proxy');

function configError(message: string): never {
  console.error(`vault-proxy: ${message}`);
  process.exit(78); // EX_CONFIG, as lib/config.ts
}

let keyring;
try {
  keyring = keyringFromEnv(process.env);
} catch (err) {
  if (!(err instanceof VaultKeyError)) throw err;
  configError(err.message);
}

const recorder = new DbRecorder(log);
const directory = new SessionDirectory(keyring, { url: config.LITELLM_GATEWAY_URL, apiKey: config.LITELLM_API_KEY });
const deps: ModeDeps = {
  recorder,
  log,
  ...createUpstreamAgents(config.VAULT_EXTRA_CA_FILE),
  load: (id) => directory.load(id),
  forget: (id) => directory.forget(id),
};
let service: { stop(): Promise<void> };
try {
  service = config.VAULT_PROXY_LISTEN ? await startPodMode(config, config.VAULT_PROXY_LISTEN, deps) : await startLocalMode(config, deps);
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
    void service
      .stop()
      .then(() => recorder.flush())
      .then(() => closeDb())
      .finally(() => process.exit(0));
  });
}

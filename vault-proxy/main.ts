// The vault proxy process (`npm run vault-proxy`; `npm start` supervises it). Needs the vault key:
// without one it stops with a message naming BERTH_VAULT_KEY. See vault-proxy/README.md.
import path from 'node:path';
import { loadConfig } from '../lib/config.ts';
import { closeDb } from '../lib/db.ts';
import { createLogger } from '../lib/log.ts';
import { VaultKeyError, keyringFromEnv } from '../lib/vault.ts';
import { CertificateAuthority, caFiles } from './ca.ts';
import { vaultRunDir } from './paths.ts';
import { DbRecorder } from './record.ts';
import { SessionDirectory } from './sessions.ts';
import { VaultProxyService } from './service.ts';
import { createUpstreamAgents } from './upstream.ts';

const config = loadConfig();
const log = createLogger('vault-proxy');

let keyring;
try {
  keyring = keyringFromEnv(process.env);
} catch (err) {
  if (!(err instanceof VaultKeyError)) throw err;
  console.error(`vault-proxy: ${err.message}`);
  process.exit(78); // EX_CONFIG, as lib/config.ts
}

const caDir = path.join(config.dataDir, 'vault-proxy', 'ca');
const ca = await CertificateAuthority.loadOrCreate(caDir);
const recorder = new DbRecorder(log);
const directory = new SessionDirectory(keyring, { url: config.LITELLM_GATEWAY_URL, apiKey: config.LITELLM_API_KEY });
const service = new VaultProxyService({
  ca,
  recorder,
  log,
  ...createUpstreamAgents(config.VAULT_EXTRA_CA_FILE),
  runDir: vaultRunDir(config.dataDir, config.BERTH_VAULT_RUN_DIR),
  caBundleFile: caFiles(caDir).bundleFile,
  load: (id) => directory.load(id),
  forget: (id) => directory.forget(id),
});
await service.start();

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

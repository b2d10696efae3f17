// The two ways the vault proxy process runs (main.ts picks one):
// - local: next to `npm start` and the bubblewrap sandboxes; a unix socket per session and a control
//   socket under the run dir, its CA kept under the data dir (created on first start);
// - pod (VAULT_PROXY_LISTEN set): the sidecar of one Kubernetes sandbox pod; its one session on that
//   TCP address, bound (with the session's view) by the worker on VAULT_PROXY_CONTROL_LISTEN, which
//   also drains its interception records: no database, no vault key. Its CA from the environment
//   (the `berth-vault-proxy` Secret), since the pod's file system is read-only and not kept.
import path from 'node:path';
import type { Config } from '../lib/config.ts';
import { CertificateAuthority, caFiles } from './ca.ts';
import type { SessionView } from './forward.ts';
import { vaultRunDir } from './paths.ts';
import { PodProxyService, parseHostPort } from './pod.ts';
import type { ProxyDeps } from './proxy.ts';
import type { InterceptionQueue } from './queue.ts';
import { VaultProxyService } from './service.ts';

export type LocalModeDeps = Omit<ProxyDeps, 'ca'> & {
  load: (sessionId: string) => Promise<SessionView>;
  forget: (sessionId: string) => void;
};

export type PodModeDeps = Omit<ProxyDeps, 'ca' | 'recorder'> & { recorder: InterceptionQueue };

/** A configuration the pod mode cannot start with; main.ts prints it and exits 78. */
export class ModeConfigError extends Error {}

export async function startLocalMode(config: Config, deps: LocalModeDeps): Promise<{ stop(): Promise<void> }> {
  const caDir = path.join(config.dataDir, 'vault-proxy', 'ca');
  const ca = await CertificateAuthority.loadOrCreate(caDir);
  const service = new VaultProxyService({
    ...deps,
    ca,
    runDir: vaultRunDir(config.dataDir, config.BERTH_VAULT_RUN_DIR),
    caBundleFile: caFiles(caDir).bundleFile,
  });
  await service.start();
  return service;
}

export async function startPodMode(config: Config, listen: string, deps: PodModeDeps): Promise<{ stop(): Promise<void> }> {
  const { VAULT_PROXY_CONTROL_TOKEN: token, VAULT_PROXY_CA_CERT: certPem, VAULT_PROXY_CA_KEY: keyPem } = config;
  const missing = [!token && 'VAULT_PROXY_CONTROL_TOKEN', !certPem && 'VAULT_PROXY_CA_CERT', !keyPem && 'VAULT_PROXY_CA_KEY'].filter(Boolean);
  if (missing.length) throw new ModeConfigError(`pod mode (VAULT_PROXY_LISTEN is set) needs ${missing.join(', ')} (from the berth-vault-proxy Secret)`);
  let ca: CertificateAuthority;
  try {
    ca = await CertificateAuthority.fromPem(certPem!, keyPem!, 'VAULT_PROXY_CA_CERT/VAULT_PROXY_CA_KEY');
  } catch (err) {
    throw new ModeConfigError((err as Error).message);
  }
  const service = new PodProxyService({
    ...deps,
    ca,
    listen: parseHostPort(listen),
    controlListen: parseHostPort(config.VAULT_PROXY_CONTROL_LISTEN),
    controlToken: token!,
    sessionFile: config.VAULT_PROXY_SESSION_FILE,
  });
  await service.start();
  return service;
}

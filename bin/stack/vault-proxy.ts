// The vault proxy process (vault-proxy/main.ts): one node process, ready once its control socket answers.
// (Tests run pod mode, as a sandbox pod's sidecar does, with test/support/pod-sidecar.ts.)
import http from 'node:http';
import { controlSocket, vaultRunDir } from '../../vault-proxy/paths.ts';
import { ROOT } from './berth.ts';
import { spawnLogged, waitReady, type ChildHandle } from './child.ts';

export interface VaultProxyProcessOptions {
  env: NodeJS.ProcessEnv;
  logPath: string;
  readyTimeoutMs?: number;
}

export async function startVaultProxy(opts: VaultProxyProcessOptions): Promise<ChildHandle & { runDir: string }> {
  const runDir = vaultRunDir(opts.env.BERTH_DATA_DIR ?? '.data', opts.env.BERTH_VAULT_RUN_DIR);
  const child = spawnLogged({
    name: 'vault-proxy', command: process.execPath, args: ['--import', 'tsx', 'vault-proxy/main.ts'], cwd: ROOT, env: opts.env, logPath: opts.logPath,
  });
  await waitReady(child, () => controlHealthy(runDir), opts.readyTimeoutMs ?? 60_000);
  return Object.assign(child, { runDir });
}

function controlHealthy(runDir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: controlSocket(runDir), path: '/healthz', timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

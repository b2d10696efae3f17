// The vault proxy in pod mode as a sandbox pod's sidecar runs it: one process, ready once its control
// port answers GET /healthz over TLS that the Berth CA (VAULT_PROXY_CA_CERT in `env`) signed for the
// control address.
import https from 'node:https';
import { ROOT } from '../../bin/stack/berth.ts';
import { spawnLogged, waitReady, type ChildHandle } from '../../bin/stack/child.ts';
import { parseHostPort } from '../../vault-proxy/pod.ts';

/** `env` must set VAULT_PROXY_LISTEN, VAULT_PROXY_CONTROL_LISTEN (host:port), the token and the CA. */
export async function startPodSidecar(opts: { env: NodeJS.ProcessEnv; logPath: string }): Promise<ChildHandle> {
  const { VAULT_PROXY_LISTEN: listen, VAULT_PROXY_CONTROL_LISTEN: control, VAULT_PROXY_CA_CERT: ca } = opts.env;
  if (!listen || !control || !ca) throw new Error('startPodSidecar: set VAULT_PROXY_LISTEN, VAULT_PROXY_CONTROL_LISTEN and VAULT_PROXY_CA_CERT');
  const child = spawnLogged({
    name: `vault-proxy ${listen}`, command: process.execPath, args: ['--import', 'tsx', 'vault-proxy/main.ts'], cwd: ROOT, env: opts.env, logPath: opts.logPath,
  });
  const { host, port } = parseHostPort(control);
  const healthz = () =>
    new Promise<boolean>((resolve) => {
      const req = https.get({ host, port, path: '/healthz', ca, agent: false, timeout: 1_000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
  await waitReady(child, healthz, 60_000);
  return child;
}

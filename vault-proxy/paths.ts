// Where the vault proxy's sockets live on the host and inside a sandbox. No I/O, no database: the
// stack launcher and the sandbox provider import this.
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

/** Where the session's directory (proxy socket and CA bundle) is bound inside the sandbox. */
export const SANDBOX_VAULT_DIR = '/run/berth';
/** The loopback address inside the sandbox's network namespace that sandboxd bridges to the socket. */
export const SANDBOX_PROXY_ADDR = '127.0.0.1:3128';
export const PROXY_SOCKET_NAME = 'proxy.sock';
export const CA_BUNDLE_NAME = 'ca-bundle.crt';
/** Inside a sandbox the LiteLLM gateway is this host (through the proxy), wherever it really is:
 * its real address may be loopback, which NO_PROXY keeps for the sandbox's own services. */
export const SANDBOX_GATEWAY_HOST = 'gateway.berth.internal';

/** Unix socket paths must fit in 108 bytes, so the run dir is short: under the temp dir, keyed by data dir. */
export function vaultRunDir(dataDir: string, override?: string): string {
  if (override) return override;
  const key = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `berth-vault-${key}`);
}

export const controlSocket = (runDir: string) => path.join(runDir, 'control.sock');
export const sessionSocketDir = (runDir: string, sessionId: string) => path.join(runDir, 's', sessionId);


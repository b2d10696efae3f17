// What a sandbox provider needs from the vault proxy: open the session's listener (over the proxy's
// control socket, which no sandbox can reach), and the environment and bind that lead a sandbox to it.
// The sandbox sees stubs, the proxy variables and a CA bundle; never a value, never the CA key.
// The kubernetes provider binds the session on the pod's sidecar instead, pushing the session's view
// (bindPodSession), and drains the sidecar's interception records (drainPodInterceptions).
import { rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { GATEWAY_CREDENTIAL, gatewayStub } from '../lib/vault.ts';
import {
  CA_BUNDLE_NAME, PROXY_SOCKET_NAME, SANDBOX_GATEWAY_HOST, SANDBOX_PROXY_ADDR, SANDBOX_VAULT_DIR, controlSocket, sessionSocketDir,
} from './paths.ts';
import { storeInterceptions } from './record.ts';
import { sessionCredentials, sessionStubs } from './sessions.ts';
import { drainResponseSchema, type PushedView } from './view.ts';

export { SANDBOX_PROXY_ADDR, SANDBOX_VAULT_DIR, vaultRunDir } from './paths.ts';

export class ProxyUnreachable extends Error {
  override name = 'ProxyUnreachable';
}

function control(runDir: string, method: 'PUT' | 'DELETE', sessionId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: controlSocket(runDir), method, path: `/sessions/${encodeURIComponent(sessionId)}` }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        res.statusCode && res.statusCode < 300
          ? resolve()
          : reject(new Error(`vault proxy: ${method} session ${sessionId}: ${res.statusCode} ${Buffer.concat(parts).toString()}`)),
      );
    });
    req.on('error', (err) => reject(new ProxyUnreachable(`the vault proxy is not reachable at ${controlSocket(runDir)} (is it running?): ${err.message}`)));
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

export interface SandboxVault {
  /** Stubs, proxy variables and CA bundle locations for the sandbox's environment. */
  env: Record<string, string>;
  /** Bind read-only at SANDBOX_VAULT_DIR. */
  hostDir: string;
  /** For sandboxd's --proxy-bridge. */
  bridge: string;
}

/** Opens (idempotently) the session's proxy listener and returns what the sandbox needs to use it. */
export interface DoorOptions {
  runDir: string;
  sessionId: string;
  gatewayUrl?: string;
  gatewayApiKey?: string;
}

export interface VaultEnvOptions {
  sessionId: string;
  gatewayUrl?: string;
  gatewayApiKey?: string;
  /** Where the CA bundle is inside the sandbox; unset when the sandbox's image sets the variables itself
   * (the Kubernetes harness entrypoint builds its bundle from the berth-ca ConfigMap). */
  caBundle?: string;
}

/** The session's credential stubs, the gateway's alias and the proxy variables (127.0.0.1:3128 in
 * both backends); never a value. */
export async function sandboxVaultEnv(opts: VaultEnvOptions): Promise<Record<string, string>> {
  const { credentials } = await sessionCredentials(opts.sessionId);
  const stubs = await sessionStubs(opts.sessionId, credentials);
  const env: Record<string, string> = {};
  for (const c of credentials) env[c.name] = stubs.get(c.id)!;
  if (opts.gatewayApiKey) env[GATEWAY_CREDENTIAL] = gatewayStub(opts.gatewayApiKey, opts.sessionId);
  if (opts.gatewayUrl) env.LITELLM_BASE_URL = `http://${SANDBOX_GATEWAY_HOST}${new URL(opts.gatewayUrl).pathname.replace(/\/$/, '')}`;
  const proxyUrl = `http://${SANDBOX_PROXY_ADDR}`;
  Object.assign(env, {
    HTTPS_PROXY: proxyUrl, HTTP_PROXY: proxyUrl, https_proxy: proxyUrl, http_proxy: proxyUrl,
    NO_PROXY: 'localhost,127.0.0.1,::1', no_proxy: 'localhost,127.0.0.1,::1',
    // Node ≥ 22.21 / 24 honour the proxy variables in fetch with this set; older Node needs an agent.
    NODE_USE_ENV_PROXY: '1',
  });
  const bundle = opts.caBundle;
  if (bundle) Object.assign(env, { SSL_CERT_FILE: bundle, NODE_EXTRA_CA_CERTS: bundle, REQUESTS_CA_BUNDLE: bundle, CURL_CA_BUNDLE: bundle, GIT_SSL_CAINFO: bundle });
  return env;
}

export async function prepareSandboxVault(opts: DoorOptions): Promise<SandboxVault> {
  await control(opts.runDir, 'PUT', opts.sessionId);
  return {
    env: await sandboxVaultEnv({ ...opts, caBundle: `${SANDBOX_VAULT_DIR}/${CA_BUNDLE_NAME}` }),
    hostDir: sessionSocketDir(opts.runDir, opts.sessionId),
    bridge: `${SANDBOX_PROXY_ADDR}=unix:${SANDBOX_VAULT_DIR}/${PROXY_SOCKET_NAME}`,
  };
}

/**
 * prepareSandboxVault, or undefined when no vault proxy runs for this data dir: the sandbox then starts
 * with no way out at all (and without stubs), which fails closed.
 */
export async function openSandboxDoor(opts: DoorOptions): Promise<SandboxVault | undefined> {
  try {
    return await prepareSandboxVault(opts);
  } catch (err) {
    if (err instanceof ProxyUnreachable) return undefined;
    throw err;
  }
}

/** Closes the session's listener and removes its directory (when the session's sandbox is destroyed). */
export async function closeSandboxVault(runDir: string, sessionId: string): Promise<void> {
  try {
    await control(runDir, 'DELETE', sessionId);
  } catch (err) {
    if (!(err instanceof ProxyUnreachable)) throw err;
    // No proxy runs: remove the directory, so the next proxy start does not reopen the listener.
    rmSync(sessionSocketDir(runDir, sessionId), { recursive: true, force: true });
  }
}

export interface PodBinding {
  /** The pod's IP. */
  host: string;
  /** The sidecar's control port (VAULT_PROXY_CONTROL_LISTEN in the pod, BERTH_K8S_VAULT_PROXY_CONTROL_PORT here). */
  port: number;
  /** The Berth CA's certificate (PEM): the only CA the sidecar's control certificate may chain to. */
  ca: string;
  token: string;
  sessionId: string;
}

/** Where the last drain of a pod's interception records ended: the sidecar's epoch and last seq stored. */
export interface DrainCursor {
  epoch: string;
  after: number;
}

type Reply = { status: number; text: string };

/** Whether a request failed on the server's certificate (not signed by the Berth CA, or not for this address). */
const CERTIFICATE_ERROR = /CERT|SIGNATURE|ISSUER|ALTNAME/;

/**
 * One request to a pod's sidecar control port, over TLS verified against the Berth CA alone (not the
 * system's CAs) and the pod's IP. Only the sidecar holds the CA key, so the handshake proves it is the
 * sidecar and not a sandbox process listening on its port (the sandbox shares the pod's network
 * namespace): nothing is written, not even the token, before the certificate checks out.
 * ProxyUnreachable when nothing answers (worth retrying).
 */
function podControl(b: PodBinding, method: 'PUT' | 'POST', suffix: string, body: unknown): Promise<Reply> {
  const where = `the vault proxy at ${b.host}:${b.port}`;
  const data = JSON.stringify(body);
  const headers = { authorization: `Bearer ${b.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
  const path = `/session/${encodeURIComponent(b.sessionId)}${suffix}`;
  return new Promise((resolve, reject) => {
    const req = https.request({ host: b.host, port: b.port, method, path, headers, ca: b.ca, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!CERTIFICATE_ERROR.test(err.code ?? '')) return reject(new ProxyUnreachable(`${where} does not answer: ${err.message}`));
      reject(new Error(`${where} presented a certificate the Berth CA did not sign for ${b.host} (${err.code}): it is not the sidecar, or BERTH_K8S_VAULT_PROXY_CA_FILE is not the CA of the berth-vault-proxy Secret; sent it neither the token nor the session's view`));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('timed out')));
    req.once('socket', (socket: TLSSocket) => {
      if (socket.authorized) return void req.end(data);
      socket.once('secureConnect', () => req.end(data)); // emitted only once the certificate verified
    });
  });
}

function refused(b: PodBinding, doing: string, res: { status: number; text: string }): Error {
  return new Error(`the vault proxy at ${b.host}:${b.port} refused to ${doing} session ${b.sessionId}: ${res.status} ${res.text.slice(0, 500)}`);
}

/**
 * Binds the session to a sandbox pod's vault proxy sidecar (pod mode, vault-proxy/pod.ts), pushing the
 * session's view, which replaces the one the sidecar holds. Fails with ProxyUnreachable when nothing
 * answers (worth retrying), else with the sidecar's reason (which never repeats the view).
 */
export async function bindPodSession(b: PodBinding, view: PushedView): Promise<void> {
  const res = await podControl(b, 'PUT', '', view);
  if (res.status !== 200) throw refused(b, 'bind', res);
}

/**
 * Drains the interception records the pod's sidecar queued for the session and stores them
 * (storeInterceptions, keyed `<epoch>:<seq>`: a record drained twice is stored once). Each drain
 * acknowledges what the previous one stored; the last, empty one acknowledges everything.
 */
export async function drainPodInterceptions(b: PodBinding, cursor?: DrainCursor): Promise<DrainCursor | undefined> {
  for (let round = 0; round < 100; round++) {
    const res = await podControl(b, 'POST', '/interceptions/drain', cursor ?? { after: 0 });
    if (res.status !== 200) throw refused(b, 'drain the interceptions of', res);
    const drained = drainResponseSchema.parse(JSON.parse(res.text));
    if (drained.epoch !== cursor?.epoch) cursor = { epoch: drained.epoch, after: 0 };
    if (drained.records.length === 0) return cursor;
    await storeInterceptions(drained.records.map(({ seq, ...r }) => ({ ...r, sessionId: b.sessionId, key: `${drained.epoch}:${seq}` })));
    cursor = { epoch: drained.epoch, after: drained.records.at(-1)!.seq };
  }
  return cursor;
}

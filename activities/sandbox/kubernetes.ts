// The `kubernetes` sandbox provider: one agent-sandbox SandboxClaim per session, taken from the
// warm pool of the agent's harness (SandboxWarmPool <prefix><harness>, built from the
// SandboxTemplate of the same name in k8s/). Claims carry no per-session settings so a warm pod is
// adopted as is. Once the claim is Ready the worker binds the session on the pod's vault proxy
// sidecar (its control port, with the shared token), pushing the session's view (credentials, stubs,
// egress policy), again on every ensure() so a change applies by the next tool call; after each tool
// call it drains the sidecar's interception records into Postgres. The sidecar has no database and
// no vault key. The session's environment, with credential stubs and the proxy variables, travels
// with every exec to sandboxd at the pod IP. The workspace
// is the template's PVC: hibernate suspends the Sandbox (the pod goes, the PVC stays) and ensure()
// resumes it. See docs/kubernetes.md.
import { readFileSync } from 'node:fs';
import { ApiException, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Config } from '../../lib/config.ts';
import { KeyedMutex } from '../../lib/keyed-mutex.ts';
import { db } from '../../lib/db.ts';
import { createLogger } from '../../lib/log.ts';
import { keyringFromEnv, type Keyring } from '../../lib/vault.ts';
import { ProxyUnreachable, bindPodSession, drainPodInterceptions, sandboxVaultEnv, type DrainCursor, type PodBinding } from '../../vault-proxy/client.ts';
import { buildSessionView } from '../../vault-proxy/sessions.ts';
import type { SandboxProvider, SandboxRuntimeState, SandboxSpec } from './provider.ts';
import { HttpSandboxdClient } from './sandboxd-client.ts';
import {
  claimName,
  claimReadiness,
  claims,
  type KubeObject,
  labelKeys,
  labelValue,
  type Readiness,
  SandboxClaimError,
  SandboxReadyTimeoutError,
  sandboxes,
  sandboxReadiness,
} from './kubernetes/resources.ts';
import { waitFor } from './kubernetes/watch.ts';

export { SandboxClaimError, SandboxReadyTimeoutError };

/** What the claim is labelled with and which pool it draws from. */
export interface SessionPlacement {
  teamId: string;
  agentId: string;
  harness: string;
}

export interface KubernetesSandboxOptions {
  kube: KubeConfig;
  namespace: string;
  /** The warm pool for harness h is `${warmPoolPrefix}${h}`. */
  warmPoolPrefix: string;
  sandboxdPort: number;
  readyTimeoutMs: number;
  /** The vault proxy sidecar of every sandbox pod (pod mode): where the session is bound, with what
   * token, over TLS verified against the Berth CA certificate `ca` (PEM); the keyring that opens the
   * credentials pushed to it, and the gateway it leads to. */
  vaultProxy: { controlPort: number; ca: string; token: string; keyring: Keyring; gatewayUrl?: string; gatewayApiKey?: string };
  /** Looks up a session's team, agent and harness; defaults to the database. */
  placement?: (sessionId: string) => Promise<SessionPlacement>;
  /** Told each time a readiness watch has to be reopened (cut connection, 410 Gone); logs by default. */
  onWatchRestart?: (why: 'closed' | 'error' | 'gone', name: string) => void;
}

const HEALTH_TIMEOUT_MS = 2_000;

export function kubernetesOptionsFromConfig(config: Config): KubernetesSandboxOptions {
  const token = config.VAULT_PROXY_CONTROL_TOKEN;
  if (!token) {
    throw new Error('BERTH_SANDBOX_BACKEND=kubernetes needs VAULT_PROXY_CONTROL_TOKEN (the one in the berth-vault-proxy Secret) to bind sessions to their pods');
  }
  const caFile = config.BERTH_K8S_VAULT_PROXY_CA_FILE;
  if (!caFile) {
    throw new Error('BERTH_SANDBOX_BACKEND=kubernetes needs BERTH_K8S_VAULT_PROXY_CA_FILE (the Berth CA certificate, the berth-ca ConfigMap) to verify the sandbox pods\' vault proxies');
  }
  let ca: string;
  try {
    ca = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`BERTH_K8S_VAULT_PROXY_CA_FILE: cannot read ${caFile}: ${(err as Error).message}`);
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`BERTH_K8S_VAULT_PROXY_CA_FILE: ${caFile} holds no PEM certificate (expected the Berth CA's ca.crt)`);
  const kube = new KubeConfig();
  if (config.BERTH_K8S_KUBECONFIG) kube.loadFromFile(config.BERTH_K8S_KUBECONFIG);
  else kube.loadFromCluster();
  return {
    kube,
    namespace: config.BERTH_K8S_NAMESPACE,
    warmPoolPrefix: config.BERTH_K8S_WARM_POOL_PREFIX,
    sandboxdPort: config.BERTH_K8S_SANDBOXD_PORT,
    readyTimeoutMs: config.BERTH_K8S_READY_TIMEOUT_S * 1000,
    vaultProxy: {
      controlPort: config.BERTH_K8S_VAULT_PROXY_CONTROL_PORT,
      ca,
      token,
      keyring: keyringFromEnv({ BERTH_VAULT_KEY: config.BERTH_VAULT_KEY, BERTH_VAULT_KEYS: config.BERTH_VAULT_KEYS, BERTH_VAULT_KEY_ID: config.BERTH_VAULT_KEY_ID }),
      gatewayUrl: config.LITELLM_GATEWAY_URL,
      gatewayApiKey: config.LITELLM_API_KEY,
    },
  };
}

async function placementFromDb(sessionId: string): Promise<SessionPlacement> {
  const session = await db().session.findUnique({ where: { id: sessionId }, select: { teamId: true, agentId: true, agent: { select: { harness: true } } } });
  if (!session) throw new Error(`session ${sessionId} does not exist`);
  return { teamId: session.teamId, agentId: session.agentId, harness: session.agent.harness };
}

export class KubernetesSandboxProvider implements SandboxProvider {
  private readonly api: CustomObjectsApi;
  /** `env`: the spec's (the cache key); the client sends it with the vault's stubs and proxy variables. */
  private readonly clients = new Map<string, { podIP: string; env: Record<string, string>; client: HttpSandboxdClient }>();
  private readonly mutex = new KeyedMutex();
  /** Per session, how far the pod's interception records have been drained. */
  private readonly drained = new Map<string, DrainCursor>();

  private readonly onWatchRestart: (why: 'closed' | 'error' | 'gone', name: string) => void;

  constructor(private readonly options: KubernetesSandboxOptions) {
    this.api = options.kube.makeApiClient(CustomObjectsApi);
    this.onWatchRestart =
      options.onWatchRestart ?? ((why, name) => createLogger('sandbox-kubernetes').debug('readiness watch reopened', { why, name }));
  }

  ensure(spec: SandboxSpec) {
    return this.mutex.run(spec.sessionId, async () => {
      // The common case, one call per activity: the pod we last reached still answers; its sidecar
      // gets the session's current view (a revoked credential or a new policy applies from now).
      const cached = this.clients.get(spec.sessionId);
      if (cached && sameEnv(cached.env, spec.env) && (await healthy(cached.client)) && (await this.pushView(spec.sessionId, cached.podIP))) {
        return { client: cached.client, started: 'no' as const };
      }
      const deadline = Date.now() + this.options.readyTimeoutMs;
      const { ready, started } = await this.claimReady(spec.sessionId, deadline);
      // A new pod (first claim, wake, replacement) is anonymous until bound: bind before any exec.
      await this.bindVault(spec.sessionId, ready, deadline);
      const client = await this.clientFor(spec, ready.podIP);
      await this.untilHealthy(client, ready.sandboxName, deadline);
      return { client, started };
    });
  }

  /** Stores the interception records the pod's sidecar queued during the tool call. */
  afterToolCall(sessionId: string): Promise<void> {
    return this.mutex.run(sessionId, () => this.drain(sessionId));
  }

  hibernate(sessionId: string): Promise<void> {
    return this.mutex.run(sessionId, async () => {
      await this.drain(sessionId);
      this.dropClient(sessionId);
      const claim = await this.get(claims, claimName(sessionId));
      const sandboxName = claim?.status?.sandbox?.name;
      if (!sandboxName) return; // no claim, or no Sandbox behind it yet: nothing runs
      await this.patch(sandboxes, sandboxName, { spec: { operatingMode: 'Suspended' } });
    });
  }

  destroy(sessionId: string): Promise<void> {
    return this.mutex.run(sessionId, async () => {
      await this.drain(sessionId);
      this.dropClient(sessionId);
      this.drained.delete(sessionId);
      // The claim owns its Sandbox, which owns the pod and the workspace PVC: all go with it.
      await this.remove(claimName(sessionId));
    });
  }

  async state(sessionId: string): Promise<SandboxRuntimeState> {
    const claim = await this.get(claims, claimName(sessionId));
    if (!claim) return 'none';
    const sandboxName = claim.status?.sandbox?.name;
    const sandbox = sandboxName ? await this.get(sandboxes, sandboxName) : undefined;
    if (sandbox?.spec?.operatingMode === 'Suspended') return 'stopped';
    return claimReadiness(claim).state === 'ready' ? 'running' : 'stopped';
  }

  /** Closes pooled connections to sandboxd (the sandboxes keep running). */
  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }

  /** The claim's pod, creating the claim, waking its Sandbox or replacing an expired claim as needed. */
  private async claimReady(sessionId: string, deadline: number) {
    const name = claimName(sessionId);
    let claim = await this.get(claims, name);
    let started: 'no' | 'created' | 'recreated' = 'no';
    if (claim?.metadata.deletionTimestamp) {
      throw new SandboxClaimError('Terminating', `SandboxClaim ${name} is being deleted; try again once it is gone`);
    }
    if (claim && claimReadiness(claim).state === 'failed' && replaceable(claimReadiness(claim))) {
      // An expired claim or a pod that ended will not come back: start over from a new claim.
      await this.remove(name);
      claim = undefined;
      started = 'recreated';
    }
    if (!claim) {
      claim = await this.create(sessionId, name);
      if (started === 'no') started = 'created';
    } else {
      const sandboxName = claim.status?.sandbox?.name;
      const sandbox = sandboxName ? await this.get(sandboxes, sandboxName) : undefined;
      if (sandbox?.spec?.operatingMode === 'Suspended') {
        const woken = await this.patch(sandboxes, sandbox.metadata.name, { spec: { operatingMode: 'Running' } });
        const ready = await this.wait(sandboxes, woken, (s) => sandboxReadiness(s, woken.metadata.generation ?? 0), deadline);
        return { ready, started: 'recreated' as const };
      }
      if (claimReadiness(claim).state !== 'ready') started = 'created';
    }
    const ready = await this.wait(claims, claim, claimReadiness, deadline);
    return { ready, started };
  }

  private async create(sessionId: string, name: string): Promise<KubeObject> {
    const placement = await (this.options.placement ?? placementFromDb)(sessionId);
    const labels = {
      [labelKeys.managedBy]: 'berth',
      [labelKeys.team]: labelValue('team id', placement.teamId),
      [labelKeys.agent]: labelValue('agent id', placement.agentId),
      [labelKeys.session]: labelValue('session id', sessionId),
    };
    const body = {
      apiVersion: `${claims.group}/${claims.version}`,
      kind: 'SandboxClaim',
      metadata: { name, labels },
      spec: {
        warmPoolRef: { name: `${this.options.warmPoolPrefix}${labelValue('harness', placement.harness)}` },
        additionalPodMetadata: { labels },
      },
    };
    try {
      return (await this.api.createNamespacedCustomObject({ ...claims, namespace: this.options.namespace, body })) as KubeObject;
    } catch (err) {
      // Another worker created it first: wait on theirs.
      if (err instanceof ApiException && err.code === 409) {
        const existing = await this.get(claims, name);
        if (existing) return existing;
      }
      throw kubeError(err, `creating SandboxClaim ${name}`);
    }
  }

  private async wait(kind: typeof claims | typeof sandboxes, initial: KubeObject, evaluate: (o: KubeObject) => Readiness, deadline: number) {
    return waitFor({
      kube: this.options.kube,
      api: this.api,
      kind,
      namespace: this.options.namespace,
      name: initial.metadata.name,
      initial: { kind: kind === claims ? 'SandboxClaim' : 'Sandbox', ...initial },
      evaluate,
      timeoutMs: Math.max(0, deadline - Date.now()),
      totalTimeoutMs: this.options.readyTimeoutMs,
      onRestart: (why) => this.onWatchRestart(why, initial.metadata.name),
    });
  }

  /** A pod reported Ready runs sandboxd, but its IP may need a moment to answer (or be stale). */
  private async untilHealthy(client: HttpSandboxdClient, sandboxName: string, deadline: number): Promise<void> {
    let lastError: unknown;
    while (Date.now() < deadline) {
      try {
        await client.health(HEALTH_TIMEOUT_MS);
        return;
      } catch (err) {
        lastError = err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const why = lastError instanceof Error ? lastError.message : String(lastError);
    throw new SandboxReadyTimeoutError(`Sandbox ${sandboxName} is Ready but sandboxd does not answer: ${why}`);
  }

  private binding(sessionId: string, podIP: string): PodBinding {
    const { controlPort: port, ca, token } = this.options.vaultProxy;
    return { host: podIP, port, ca, token, sessionId };
  }

  /** Binds the session on the pod's vault proxy with its current view; false when the sidecar does not answer. */
  private async pushView(sessionId: string, podIP: string): Promise<boolean> {
    const { keyring, gatewayUrl: url, gatewayApiKey: apiKey } = this.options.vaultProxy;
    const { sessionId: _id, ...view } = await buildSessionView(sessionId, keyring, { url, apiKey });
    try {
      await bindPodSession(this.binding(sessionId, podIP), view);
      return true;
    } catch (err) {
      if (err instanceof ProxyUnreachable) return false;
      throw err;
    }
  }

  /** Best effort: records the sidecar could not hand over stay queued there for the next drain. */
  private async drain(sessionId: string): Promise<void> {
    const podIP = this.clients.get(sessionId)?.podIP;
    if (!podIP) return;
    try {
      const cursor = await drainPodInterceptions(this.binding(sessionId, podIP), this.drained.get(sessionId));
      if (cursor) this.drained.set(sessionId, cursor);
    } catch (err) {
      createLogger('sandbox-kubernetes').warn('could not drain the vault proxy\'s interception records', { sessionId, err: (err as Error).message });
    }
  }

  /** Binds the session on the pod's vault proxy, waiting while the sidecar does not answer. */
  private async bindVault(sessionId: string, ready: { podIP: string; sandboxName: string }, deadline: number): Promise<void> {
    while (!(await this.pushView(sessionId, ready.podIP))) {
      if (Date.now() > deadline) {
        const where = `${ready.podIP}:${this.options.vaultProxy.controlPort}`;
        throw new SandboxReadyTimeoutError(`Sandbox ${ready.sandboxName} is Ready but the vault proxy at ${where} does not answer`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async clientFor(spec: SandboxSpec, podIP: string): Promise<HttpSandboxdClient> {
    const cached = this.clients.get(spec.sessionId);
    if (cached?.podIP === podIP && sameEnv(cached.env, spec.env)) return cached.client;
    cached?.client.close();
    const { gatewayUrl, gatewayApiKey } = this.options.vaultProxy;
    // Stubs only: the values go to the sidecar (pushView), never to the sandbox.
    const vaultEnv = await sandboxVaultEnv({ sessionId: spec.sessionId, gatewayUrl, gatewayApiKey });
    const client = new HttpSandboxdClient({ host: podIP, port: this.options.sandboxdPort }, { env: { ...spec.env, ...vaultEnv } });
    this.clients.set(spec.sessionId, { podIP, env: spec.env, client });
    return client;
  }

  private dropClient(sessionId: string): void {
    this.clients.get(sessionId)?.client.close();
    this.clients.delete(sessionId);
  }

  private async get(kind: typeof claims | typeof sandboxes, name: string): Promise<KubeObject | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({ ...kind, namespace: this.options.namespace, name })) as KubeObject;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw kubeError(err, `reading ${kind.plural}/${name}`);
    }
  }

  private async patch(kind: typeof claims | typeof sandboxes, name: string, body: object): Promise<KubeObject> {
    try {
      return (await this.api.patchNamespacedCustomObject(
        { ...kind, namespace: this.options.namespace, name, body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )) as KubeObject;
    } catch (err) {
      throw kubeError(err, `patching ${kind.plural}/${name}`);
    }
  }

  private async remove(name: string): Promise<void> {
    try {
      await this.api.deleteNamespacedCustomObject({ ...claims, namespace: this.options.namespace, name, propagationPolicy: 'Background' });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return;
      throw kubeError(err, `deleting SandboxClaim ${name}`);
    }
  }
}

export function kubernetesSandboxProvider(options: KubernetesSandboxOptions): KubernetesSandboxProvider {
  return new KubernetesSandboxProvider(options);
}

async function healthy(client: HttpSandboxdClient): Promise<boolean> {
  try {
    await client.health(HEALTH_TIMEOUT_MS);
    return true;
  } catch {
    return false;
  }
}

function sameEnv(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Reasons after which a new claim (not waiting) brings the session's sandbox back. */
function replaceable(r: Readiness): boolean {
  return r.state === 'failed' && ['ClaimExpired', 'SandboxExpired', 'PodSucceeded', 'PodFailed'].includes(r.error.reason);
}

/** An API error with what we were doing and the server's message (never a token: those are headers). */
function kubeError(err: unknown, doing: string): Error {
  if (err instanceof ApiException) {
    const body = typeof err.body === 'string' ? safeJson(err.body) : (err.body as { message?: string } | undefined);
    return new Error(`Kubernetes API: ${doing} failed (HTTP ${err.code}${body?.message ? `: ${body.message}` : ''})`);
  }
  return err instanceof Error ? new Error(`Kubernetes API: ${doing} failed: ${err.message}`) : new Error(`${doing} failed`);
}

function safeJson(text: string): { message?: string } | undefined {
  try {
    return JSON.parse(text) as { message?: string };
  } catch {
    return { message: text.slice(0, 300) };
  }
}

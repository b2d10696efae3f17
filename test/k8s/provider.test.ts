// The kubernetes sandbox provider against a real kube-apiserver and etcd (built by bin/setup-kube)
// with the agent-sandbox v1beta1 CRDs applied. The test plays the agent-sandbox controller
// (support/controller.ts): Ready status with a pod IP that leads to a real sandboxd on loopback and
// a real vault proxy in pod mode beside it (no database, no vault key), which the provider binds to
// the session with the session's view, and whose interception records it drains into Postgres.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  kubernetesOptionsFromConfig,
  kubernetesSandboxProvider,
  SandboxClaimError,
  SandboxReadyTimeoutError,
  type KubernetesSandboxProvider,
  type SessionPlacement,
} from '../../activities/sandbox/kubernetes.ts';
import type { SandboxdClient } from '../../activities/sandbox/provider.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { parseConfig } from '../../lib/config.ts';
import { closeDb, db } from '../../lib/db.ts';
import { newId } from '../../lib/ids.ts';
import { keyringFromEnv, seal } from '../../lib/vault.ts';
import { CertificateAuthority, caFiles } from '../../vault-proxy/ca.ts';
import http from 'node:http';
import { bindPodSession } from '../../vault-proxy/client.ts';
import { buildSessionView } from '../../vault-proxy/sessions.ts';
import { playController, type PlayedController } from './support/controller.ts';
import { compactEtcd, installAgentSandbox, repoRoot, startControlPlane, yamlDocs, type ControlPlane } from './support/control-plane.ts';
import { startCutter, type Cutter } from './support/cutter.ts';

const NS = 'berth-sandboxes';
const ext = `/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/${NS}`;
const core = `/apis/agents.x-k8s.io/v1beta1/namespaces/${NS}`;

let plane: ControlPlane;
let controller: PlayedController;
let cutter: Cutter;
let provider: KubernetesSandboxProvider;
let sandboxdPort: number;
const vaultKey = `t1:${randomBytes(32).toString('base64')}`;
const keyring = keyringFromEnv({ BERTH_VAULT_KEY: vaultKey });
let vaultProxy: { controlPort: number; ca: string; token: string; keyring: typeof keyring };
let sidecarProxyPort: number;
const canary = `ghp_CANARY_${randomBytes(12).toString('hex')}`;
const credName = `K8S_${randomBytes(3).toString('hex').toUpperCase()}`;
// Sessions the provider makes sandboxes for exist in the database: their stubs come from there.
const SESSIONS = ['ses_alpha', 'ses_beta', 'ses_gamma', 'ses_delta', 'ses_slow'];
const restarts: string[] = [];
const harnessOf: Record<string, string> = {};
const placement = async (sessionId: string): Promise<SessionPlacement> => ({
  teamId: 'team_acme',
  agentId: 'agt_helper',
  harness: harnessOf[sessionId] ?? 'builtin',
});

beforeAll(async () => {
  process.env.DATABASE_URL = inject('databaseUrl'); // before anything reads (and caches) the config
  plane = await startControlPlane();
  await installAgentSandbox(plane, NS);
  // The repo's own template and pool: the real API server validates them against the CRDs.
  for (const file of ['template-builtin.yaml', 'warmpool-builtin.yaml']) {
    const docs = yamlDocs(fs.readFileSync(path.join(repoRoot, 'k8s/base/sandboxes', file), 'utf8')) as { kind: string }[];
    for (const doc of docs) await plane.request('POST', `${ext}/${doc.kind.toLowerCase()}s`, doc);
  }
  await seedSessions();
  sandboxdPort = await freePort();
  // The sidecars' control ports serve TLS their CA signs; the provider trusts that CA alone.
  const caDir = path.join(plane.dir, 'vault-ca');
  const ca = (await CertificateAuthority.loadOrCreate(caDir)).certPem;
  vaultProxy = { controlPort: await freePort(), ca, token: randomBytes(32).toString('hex'), keyring };
  sidecarProxyPort = await freePort();
  controller = playController(plane, NS, sandboxdPort, {
    proxyPort: sidecarProxyPort,
    controlPort: vaultProxy.controlPort,
    env: {
      PATH: process.env.PATH, BERTH_DATA_DIR: path.join(plane.dir, 'vault-data'),
      VAULT_PROXY_CONTROL_TOKEN: vaultProxy.token,
      VAULT_PROXY_CA_CERT: fs.readFileSync(caFiles(caDir).certFile, 'utf8'), VAULT_PROXY_CA_KEY: fs.readFileSync(caFiles(caDir).keyFile, 'utf8'),
    },
  });
  cutter = await startCutter({ host: '127.0.0.1', port: Number(new URL(plane.server).port) });
  provider = kubernetesSandboxProvider({
    kube: plane.kubeConfig(cutter.server),
    namespace: NS,
    warmPoolPrefix: 'berth-',
    sandboxdPort,
    readyTimeoutMs: 20_000,
    vaultProxy,
    placement,
    onWatchRestart: (why) => restarts.push(why),
  });
}, 180_000);

// A test that fails while holding the played controller must not stall the ones after it.
afterEach(() => controller?.release());

afterAll(async () => {
  await closeDb();
  provider?.close();
  await controller?.stop();
  await cutter?.close();
  await plane?.stop();
});

async function seedSessions(): Promise<void> {
  const team = await db().team.create({ data: { id: `team_prov${Date.now().toString(36)}`, name: 'k8s provider test' } });
  const credId = newId('cred');
  const sealed = seal(keyring, canary, credId);
  await db().credential.create({
    data: { id: credId, teamId: team.id, name: credName, ciphertext: new Uint8Array(sealed.ciphertext), keyId: sealed.keyId, hosts: ['api.github.com'], inject: ['header'] },
  });
  const agent = await db().agent.create({ data: { id: newId('agt'), teamId: team.id, name: 'k8s', model: 'berth-demo', harness: 'builtin', credentialIds: [credId] } });
  await db().session.createMany({ data: SESSIONS.map((id) => ({ id, teamId: team.id, agentId: agent.id })), skipDuplicates: true });
}

/** Binding another session on the pod's sidecar is refused only when it already serves `sessionId`. */
async function expectBoundTo(podIP: string, sessionId: string): Promise<void> {
  const { sessionId: _id, ...view } = await buildSessionView(sessionId, keyring, {});
  const { controlPort: port, ca, token } = vaultProxy;
  await bindPodSession({ host: podIP, port, ca, token, sessionId }, view);
  await expect(bindPodSession({ host: podIP, port, ca, token, sessionId: 'ses_intruder' }, view)).rejects.toThrow(/409/);
}

/** A plain request through the pod's sidecar (as the sandbox makes it): status and error code. */
function throughSidecar(podIP: string, url: string): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: podIP, port: sidecarProxyPort, path: url }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text || '{}') as { error?: { code: string } }).error?.code }));
    }).on('error', reject);
  });
}

async function run(client: SandboxdClient, command: string): Promise<string> {
  let out = '';
  const result = await client.exec({ id: `k8s-${Date.now()}-${Math.random()}`, command, timeoutMs: 10_000 }, (c) => (out += c.data));
  expect(result.exitCode).toBe(0);
  return out;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Claim = { metadata: { labels: Record<string, string>; resourceVersion: string }; spec: Record<string, unknown>; status?: { sandbox?: { name: string; podIPs?: string[] } } };
type Sandbox = { spec: { operatingMode?: string } };
const getClaim = (name: string) => plane.request<Claim>('GET', `${ext}/sandboxclaims/${name}`);

describe('kubernetes sandbox provider (real kube-apiserver, played controller)', () => {
  it('claims from the warm pool, waits for Ready, and execs through sandboxd with the session env', async () => {
    const { client, started } = await provider.ensure({ sessionId: 'ses_alpha', env: { GREETING: 'hello from k8s' } });
    expect(started).toBe('created');
    expect(await run(client, 'echo "$GREETING"; pwd')).toBe(`hello from k8s\n${controller.pods.get('berth-ses-alpha')!.workspace}\n`);

    // The pod's vault proxy serves this session, and the sandbox holds the stub, never the value.
    await expectBoundTo(controller.pods.get('berth-ses-alpha')!.ip, 'ses_alpha');
    const { stub } = await db().credentialStub.findFirstOrThrow({ where: { sessionId: 'ses_alpha' } });
    expect(await run(client, `printf '%s|%s|%s' "$${credName}" "$HTTPS_PROXY" "$NO_PROXY"`)).toBe(`${stub}|http://127.0.0.1:3128|localhost,127.0.0.1,::1`);
    expect(await run(client, 'env')).not.toContain(canary);

    const claim = await getClaim('berth-ses-alpha');
    const labels = { 'app.kubernetes.io/managed-by': 'berth', 'berth.dev/team': 'team_acme', 'berth.dev/agent': 'agt_helper', 'berth.dev/session': 'ses_alpha' };
    expect(claim.metadata.labels).toEqual(labels);
    expect(claim.spec).toEqual({ warmPoolRef: { name: 'berth-builtin' }, additionalPodMetadata: { labels } });

    const again = await provider.ensure({ sessionId: 'ses_alpha', env: { GREETING: 'hello from k8s' } });
    expect(again.started).toBe('no');
    expect(again.client).toBe(client);
    expect(await provider.state('ses_alpha')).toBe('running');
  });

  it('pushed the session\'s view to the sidecar, and drains its records into Postgres after a tool call', async () => {
    await provider.ensure({ sessionId: 'ses_alpha', env: { GREETING: 'hello from k8s' } });
    const podIP = controller.pods.get('berth-ses-alpha')!.ip;
    // The sidecar decides by the pushed egress policy (loopback is not allowed), so it holds the view.
    expect(await throughSidecar(podIP, 'http://127.0.0.1:9/probe?token=x')).toEqual({ status: 403, code: 'egress_denied' });
    await provider.afterToolCall('ses_alpha');
    await provider.afterToolCall('ses_alpha'); // nothing new: stored once
    const rows = await db().interception.findMany({ where: { sessionId: 'ses_alpha', path: '/probe' } });
    expect(rows).toMatchObject([{ host: '127.0.0.1', method: 'GET', decision: 'blocked', credentialName: null }]);
    const events = await db().sessionEvent.findMany({ where: { sessionId: 'ses_alpha', type: 'egress.blocked' } });
    expect(events.map((e) => e.data)).toMatchObject([{ host: '127.0.0.1', path: '/probe' }]);

    // The next ensure (the next tool call, same pod) pushes the changed policy: 127.0.0.1 is allowed now.
    const { agentId } = await db().session.findUniqueOrThrow({ where: { id: 'ses_alpha' } });
    await db().agent.update({ where: { id: agentId }, data: { egress: { allow: ['127.0.0.1'] } } });
    try {
      expect((await provider.ensure({ sessionId: 'ses_alpha', env: { GREETING: 'hello from k8s' } })).started).toBe('no');
      expect(await throughSidecar(podIP, 'http://127.0.0.1:9/probe')).toEqual({ status: 502, code: 'upstream_failed' });
    } finally {
      await db().agent.update({ where: { id: agentId }, data: { egress: {} } });
      await provider.ensure({ sessionId: 'ses_alpha', env: { GREETING: 'hello from k8s' } });
    }
  });

  it('hibernates by suspending the Sandbox (workspace kept) and wakes it on a new pod IP', async () => {
    const { client } = await provider.ensure({ sessionId: 'ses_alpha', env: {} });
    await client.writeFile('notes.txt', 'kept across hibernation');
    const ipBefore = controller.pods.get('berth-ses-alpha')!.ip;

    await provider.hibernate('ses_alpha');
    const sandbox = await plane.request<Sandbox>('GET', `${core}/sandboxes/berth-ses-alpha`);
    expect(sandbox.spec.operatingMode).toBe('Suspended');
    expect(await provider.state('ses_alpha')).toBe('stopped');
    await until('the pod to stop', async () => (controller.pods.get('berth-ses-alpha')!.sandboxd ? undefined : true));
    await expect(client.health()).rejects.toThrow(/unreachable|closed/);

    const woken = await provider.ensure({ sessionId: 'ses_alpha', env: {} });
    expect(woken.started).toBe('recreated');
    expect(controller.pods.get('berth-ses-alpha')!.ip).not.toBe(ipBefore);
    await expectBoundTo(controller.pods.get('berth-ses-alpha')!.ip, 'ses_alpha'); // a new pod: bound again
    expect((await woken.client.readFile('notes.txt')).toString()).toBe('kept across hibernation');
    expect(await provider.state('ses_alpha')).toBe('running');
  });

  it('resumes a watch cut mid-way and relists after 410 Gone', async () => {
    await controller.hold();
    restarts.length = 0;
    const pending = provider.ensure({ sessionId: 'ses_beta', env: {} });
    const claim = await until('the claim', () => getClaim('berth-ses-beta').catch(() => undefined));
    await new Promise((r) => setTimeout(r, 300)); // the provider is now watching from the create's version

    cutter.cut({ block: true });
    // Move etcd on and compact it: the version the provider resumes from no longer exists.
    for (let i = 0; i < 5; i++) {
      await plane.request('PATCH', `${ext}/sandboxclaims/berth-ses-beta`, { metadata: { annotations: { touch: String(i) } } }, 'application/merge-patch+json');
    }
    const compactedAt = await compactEtcd(plane);
    expect(compactedAt).toBeGreaterThan(Number(claim.metadata.resourceVersion));
    await new Promise((r) => setTimeout(r, 300));
    cutter.resume();
    controller.release();

    const { client, started } = await pending;
    expect(started).toBe('created');
    expect(restarts).toContain('gone');
    expect(restarts.some((why) => why === 'error' || why === 'closed')).toBe(true);
    expect(await run(client, 'echo ok')).toBe('ok\n');
  });

  it('fails with the controller reason when the warm pool or its template is missing', async () => {
    harnessOf.ses_nopool = 'missing';
    const noPool = provider.ensure({ sessionId: 'ses_nopool', env: {} });
    await expect(noPool).rejects.toBeInstanceOf(SandboxClaimError);
    await expect(noPool).rejects.toThrow(/SandboxWarmPool does not exist \(WarmPoolNotFound: SandboxWarmPool "berth-missing" not found\)/);

    await plane.request('POST', `${ext}/sandboxwarmpools`, {
      apiVersion: 'extensions.agents.x-k8s.io/v1beta1',
      kind: 'SandboxWarmPool',
      metadata: { name: 'berth-orphan' },
      spec: { replicas: 1, sandboxTemplateRef: { name: 'berth-orphan' } },
    });
    harnessOf.ses_orphan = 'orphan';
    await expect(provider.ensure({ sessionId: 'ses_orphan', env: {} })).rejects.toMatchObject({ name: 'SandboxClaimError', reason: 'TemplateNotFound' });
  });

  it('replaces an expired claim, and reports expiry while waiting', async () => {
    await provider.ensure({ sessionId: 'ses_gamma', env: {} });
    const expired = { type: 'Ready', status: 'False', reason: 'ClaimExpired', message: 'Claim expired. Sandbox cleanup initiated.', lastTransitionTime: new Date().toISOString() };
    await controller.hold();
    await plane.request('PATCH', `${ext}/sandboxclaims/berth-ses-gamma/status`, { status: { conditions: [expired] } }, 'application/merge-patch+json');
    controller.release();
    await until('the expired claim to lose its pod', async () => (controller.pods.has('berth-ses-gamma') ? undefined : true));
    const replaced = await provider.ensure({ sessionId: 'ses_gamma', env: {} });
    expect(replaced.started).toBe('recreated');
    expect(await run(replaced.client, 'echo fresh')).toBe('fresh\n');

    await controller.hold();
    const waiting = provider.ensure({ sessionId: 'ses_delta', env: {} });
    await until('the claim', () => getClaim('berth-ses-delta').catch(() => undefined));
    const sandboxExpired = { ...expired, reason: 'SandboxExpired', message: 'Underlying Sandbox resource has expired independently of the Claim.' };
    await plane.request('PATCH', `${ext}/sandboxclaims/berth-ses-delta/status`, { status: { conditions: [sandboxExpired] } }, 'application/merge-patch+json');
    await expect(waiting).rejects.toMatchObject({ reason: 'SandboxExpired', message: expect.stringContaining('the Sandbox expired') });
    controller.release();
  });

  it('times out with the last reason it saw', async () => {
    const impatient = kubernetesSandboxProvider({
      kube: plane.kubeConfig(),
      namespace: NS,
      warmPoolPrefix: 'berth-',
      sandboxdPort,
      readyTimeoutMs: 1_500,
      vaultProxy,
      placement,
    });
    await controller.hold();
    const pending = impatient.ensure({ sessionId: 'ses_slow', env: {} });
    await until('the claim', () => getClaim('berth-ses-slow').catch(() => undefined));
    const notReady = { type: 'Ready', status: 'False', reason: 'DependenciesNotReady', message: 'Pod is not ready', lastTransitionTime: new Date().toISOString() };
    await plane.request('PATCH', `${ext}/sandboxclaims/berth-ses-slow/status`, { status: { conditions: [notReady] } }, 'application/merge-patch+json');
    await expect(pending).rejects.toBeInstanceOf(SandboxReadyTimeoutError);
    await expect(pending).rejects.toThrow('berth-ses-slow was not ready after 1.5s (last reason: DependenciesNotReady: Pod is not ready)');
    controller.release();
    impatient.close();
  });

  it('configured from the environment: a kubeconfig file, and team, agent and harness from the database', async () => {
    const suffix = Date.now().toString(36);
    const ids = { team: `team_k8s${suffix}`, agent: `agt_k8s${suffix}`, session: `ses_k8s${suffix}` };
    await db().team.create({ data: { id: ids.team, name: 'k8s test team' } });
    await db().agent.create({ data: { id: ids.agent, teamId: ids.team, name: 'k8s', model: 'berth-demo', harness: 'builtin' } });
    await db().session.create({ data: { id: ids.session, teamId: ids.team, agentId: ids.agent } });

    const kubeconfig = path.join(plane.dir, 'kubeconfig.yaml');
    fs.writeFileSync(kubeconfig, plane.kubeConfig().exportConfig(), { mode: 0o600 });
    const caFile = path.join(plane.dir, 'berth-ca.crt'); // the berth-ca ConfigMap's ca.crt
    fs.writeFileSync(caFile, vaultProxy.ca);
    const config = parseConfig({
      BERTH_K8S_KUBECONFIG: kubeconfig, BERTH_K8S_NAMESPACE: NS, BERTH_K8S_SANDBOXD_PORT: String(sandboxdPort), BERTH_K8S_READY_TIMEOUT_S: '20',
      BERTH_K8S_VAULT_PROXY_CONTROL_PORT: String(vaultProxy.controlPort), BERTH_K8S_VAULT_PROXY_CA_FILE: caFile,
      VAULT_PROXY_CONTROL_TOKEN: vaultProxy.token, BERTH_VAULT_KEY: vaultKey,
    });
    expect(() => kubernetesOptionsFromConfig({ ...config, VAULT_PROXY_CONTROL_TOKEN: undefined })).toThrow(/needs VAULT_PROXY_CONTROL_TOKEN/);
    expect(() => kubernetesOptionsFromConfig({ ...config, BERTH_K8S_VAULT_PROXY_CA_FILE: undefined })).toThrow(/needs BERTH_K8S_VAULT_PROXY_CA_FILE/);
    expect(() => kubernetesOptionsFromConfig({ ...config, BERTH_K8S_VAULT_PROXY_CA_FILE: kubeconfig })).toThrow(/BERTH_K8S_VAULT_PROXY_CA_FILE: .* holds no PEM certificate/);
    const fromConfig = kubernetesSandboxProvider(kubernetesOptionsFromConfig(config));
    try {
      const { client, started } = await fromConfig.ensure({ sessionId: ids.session, env: {} });
      expect(started).toBe('created');
      expect(await run(client, 'echo configured')).toBe('configured\n');
      const claim = await getClaim(`berth-${ids.session.replace('_', '-')}`);
      expect(claim.metadata.labels).toMatchObject({ 'berth.dev/team': ids.team, 'berth.dev/agent': ids.agent, 'berth.dev/session': ids.session });
      expect(claim.spec.warmPoolRef).toEqual({ name: 'berth-builtin' });
      await fromConfig.destroy(ids.session);
      await expect(fromConfig.ensure({ sessionId: 'ses_unknown', env: {} })).rejects.toThrow('session ses_unknown does not exist');
    } finally {
      fromConfig.close();
    }
  });

  it('destroy deletes the claim, and with it the Sandbox and the workspace', async () => {
    await provider.ensure({ sessionId: 'ses_alpha', env: {} });
    const workspace = controller.pods.get('berth-ses-alpha')!.workspace;
    expect(fs.existsSync(path.join(workspace, 'notes.txt'))).toBe(true);

    await provider.destroy('ses_alpha');
    await expect(getClaim('berth-ses-alpha')).rejects.toThrow(/HTTP 404/);
    expect(await provider.state('ses_alpha')).toBe('none');
    await until('the workspace to go', async () => (fs.existsSync(workspace) ? undefined : true));
    await expect(plane.request('GET', `${core}/sandboxes/berth-ses-alpha`)).rejects.toThrow(/HTTP 404/);
    await provider.destroy('ses_alpha'); // idempotent
  });
});

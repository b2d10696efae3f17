// A real, standalone Kubernetes control plane for tests: etcd and kube-apiserver built by
// bin/setup-kube, on free ports in a temp dir, with token auth and the apiserver's own
// self-signed serving certificate. No controllers, no nodes: the tests play the controllers.
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { spawnLogged, startupLog, waitReady, type ChildHandle } from '../../../bin/stack/child.ts';
import { freePort } from '../../../bin/stack/ports.ts';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const crdDir = path.join(repoRoot, 'test', 'k8s', 'crds', 'agent-sandbox-v0.5.6');
const toolsBin = path.join(repoRoot, '.tools', 'bin');

export interface ControlPlane {
  server: string;
  token: string;
  caFile: string;
  etcdUrl: string;
  dir: string;
  /** A kubeconfig for `server` (or another address that leads to it, such as a cutting proxy). */
  kubeConfig(server?: string): KubeConfig;
  /** GET/POST/PATCH a raw API path; throws with the server's message on a non-2xx status. */
  request<T = unknown>(method: string, apiPath: string, body?: unknown, contentType?: string): Promise<T>;
  stop(): Promise<void>;
}

/** The documents of a YAML stream as plain objects (client-node's loadAllYaml renames `enum`/`default`). */
export function yamlDocs(text: string): unknown[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length) throw new Error(`invalid YAML: ${doc.errors[0]!.message}`);
      return doc.toJS() as unknown;
    })
    .filter((doc) => doc !== null && doc !== undefined);
}

export function requireTool(name: string): string {
  const bin = path.join(toolsBin, name);
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run bin/setup-kube (it builds ${name} from the Go module proxy)`);
  return bin;
}

export async function startControlPlane(): Promise<ControlPlane> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-kube-'));
  const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${clientPort}`;
  const etcd = spawnLogged({
    name: 'etcd',
    command: requireTool('etcd'),
    args: [
      '--name=test', `--data-dir=${path.join(dir, 'etcd')}`, '--unsafe-no-fsync', '--log-level=warn',
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=test=http://127.0.0.1:${peerPort}`,
    ],
    logPath: path.join(dir, 'etcd.log'),
  });
  const children: ChildHandle[] = [etcd];
  try {
    await waitReady(etcd, async () => (await fetch(`${etcdUrl}/health`)).ok, 30_000);

    const token = randomBytes(24).toString('hex');
    fs.writeFileSync(path.join(dir, 'tokens.csv'), `${token},berth-test,berth-test,"system:masters"\n`, { mode: 0o600 });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    const certDir = path.join(dir, 'certs');
    const apiserver = spawnLogged({
      name: 'kube-apiserver',
      command: requireTool('kube-apiserver'),
      args: [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${securePort}`,
        `--cert-dir=${certDir}`, // no --tls-cert-file: the apiserver writes a self-signed pair here
        `--token-auth-file=${path.join(dir, 'tokens.csv')}`, '--anonymous-auth=false',
        '--authorization-mode=RBAC',
        `--service-account-key-file=${path.join(dir, 'sa.key')}`,
        `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--service-cluster-ip-range=10.96.0.0/24',
        // Watches go to etcd, so a compacted resourceVersion answers 410 Gone as a busy cluster does.
        '--watch-cache=false',
        '--etcd-compaction-interval=0', // the tests compact etcd themselves
        '--enable-priority-and-fairness=false',
        '--profiling=false', '--v=1',
      ],
      logPath: path.join(dir, 'kube-apiserver.log'),
    });
    children.push(apiserver);
    const server = `https://127.0.0.1:${securePort}`;
    const caFile = path.join(certDir, 'apiserver.crt');
    const plane: ControlPlane = {
      server,
      token,
      caFile,
      etcdUrl,
      dir,
      kubeConfig: (at = server) => kubeConfigFor(at, token, caFile),
      request: (method, apiPath, body, contentType) => rawRequest(server, token, caFile, method, apiPath, body, contentType),
      async stop() {
        for (const child of children.reverse()) await child.stop(5_000);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
    await waitReady(apiserver, async () => fs.existsSync(caFile) && (await plane.request<string>('GET', '/readyz')) === 'ok', 90_000);
    return plane;
  } catch (err) {
    const logs = children.map((c) => `--- ${c.name}\n${startupLog(c.logPath)}`).join('\n');
    for (const child of children.reverse()) await child.stop(2_000);
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
}

function kubeConfigFor(server: string, token: string, caFile: string): KubeConfig {
  const kube = new KubeConfig();
  kube.loadFromOptions({
    clusters: [{ name: 'test', server, caFile }],
    users: [{ name: 'test', token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
    currentContext: 'test',
  });
  return kube;
}

function rawRequest<T>(server: string, token: string, caFile: string, method: string, apiPath: string, body?: unknown, contentType = 'application/json'): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = https.request(
      `${server}${apiPath}`,
      {
        method,
        ca: fs.readFileSync(caFile),
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(payload ? { 'content-type': contentType } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 300) return reject(new Error(`${method} ${apiPath}: HTTP ${res.statusCode}: ${text.slice(0, 500)}`));
          try {
            resolve(JSON.parse(text) as T);
          } catch {
            resolve(text as T);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Creates the namespace and applies the agent-sandbox CRDs from shared/, waiting until each is Established. */
export async function installAgentSandbox(plane: ControlPlane, namespace: string): Promise<void> {
  await plane.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  const files = fs.readdirSync(crdDir).filter((f) => f.endsWith('.yaml'));
  if (files.length !== 4) throw new Error(`expected the four agent-sandbox CRDs in ${crdDir}, found ${files.join(', ') || 'none'}`);
  const names: string[] = [];
  for (const file of files) {
    for (const crd of yamlDocs(fs.readFileSync(path.join(crdDir, file), 'utf8')) as { metadata: { name: string } }[]) {
      await plane.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      names.push(crd.metadata.name);
    }
  }
  const deadline = Date.now() + 30_000;
  for (const name of names) {
    for (;;) {
      const crd = await plane.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
      );
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} was not Established within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Compacts etcd at its current revision: every older resourceVersion now answers 410 Gone. */
export async function compactEtcd(plane: ControlPlane): Promise<number> {
  const post = async (route: string, body: unknown) => {
    const res = await fetch(`${plane.etcdUrl}${route}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`etcd ${route}: HTTP ${res.status}: ${await res.text()}`);
    return (await res.json()) as { header: { revision: string } };
  };
  const { header } = await post('/v3/kv/range', { key: Buffer.from('/').toString('base64') });
  await post('/v3/kv/compaction', { revision: header.revision, physical: true });
  return Number(header.revision);
}

// The vault proxy in pod mode (a Kubernetes sandbox pod's sidecar), as a real process on TCP ports
// against the test stack's Postgres: it forwards nothing until the worker binds its one session on
// the control port with the shared token, then swaps stubs and scrubs responses like the unix-socket
// listener; its CA comes from the environment; a restarted proxy keeps its session (session file).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT } from '../../bin/stack/berth.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { startPodVaultProxy } from '../../bin/stack/vault-proxy.ts';
import { CertificateAuthority, caFiles } from '../../vault-proxy/ca.ts';
import { ARTIFACTS } from '../support/processes.ts';
import { TunnelAgent, request, startUpstream, tempDir, type Upstream } from './support.ts';

process.env.DATABASE_URL = inject('databaseUrl');
const { db, closeDb } = await import('../../lib/db.ts');
const { newId } = await import('../../lib/ids.ts');
const { keyringFromEnv, seal } = await import('../../lib/vault.ts');
const { bindPodSession, sandboxVaultEnv } = await import('../../vault-proxy/client.ts');

const run = promisify(execFile);
const vaultKey = `t1:${randomBytes(32).toString('base64')}`;
const token = randomBytes(32).toString('hex');
const canary = `ghp_CANARY_${randomBytes(12).toString('hex')}`;
const credName = `POD_${randomBytes(3).toString('hex').toUpperCase()}`;

let tmp: ReturnType<typeof tempDir>;
let upstream: Upstream;
let proxy: Awaited<ReturnType<typeof startPodVaultProxy>>;
let env: NodeJS.ProcessEnv;
let proxyPort: number;
let controlPort: number;
let caPem: string;
let sessionId: string;

beforeAll(async () => {
  tmp = tempDir('berth-vault-pod-');
  upstream = await startUpstream(tmp.dir);
  const credId = newId('cred');
  const sealed = seal(keyringFromEnv({ BERTH_VAULT_KEY: vaultKey }), canary, credId);
  await db().credential.create({
    data: { id: credId, teamId: 'team_default', name: credName, ciphertext: new Uint8Array(sealed.ciphertext), keyId: sealed.keyId, hosts: ['localhost'], inject: ['header'] },
  });
  const agent = await db().agent.create({
    data: { id: newId('agt'), teamId: 'team_default', name: 'pod vault test', model: 'scripted/none', tools: [], credentialIds: [credId], egress: { allow: ['localhost'] } },
  });
  sessionId = (await db().session.create({ data: { id: newId('ses'), teamId: 'team_default', agentId: agent.id } })).id;

  // The CA pair as the Secret holds it: PEM text in the environment, no files.
  const caDir = path.join(tmp.dir, 'secret-ca');
  caPem = (await CertificateAuthority.loadOrCreate(caDir)).certPem;
  [proxyPort, controlPort] = [await freePort(), await freePort()];
  env = {
    PATH: process.env.PATH, BERTH_DATA_DIR: path.join(tmp.dir, 'data'), DATABASE_URL: inject('databaseUrl'), BERTH_VAULT_KEY: vaultKey,
    VAULT_EXTRA_CA_FILE: upstream.caFile,
    VAULT_PROXY_SESSION_FILE: path.join(tmp.dir, 'session'),
    VAULT_PROXY_LISTEN: `127.0.0.1:${proxyPort}`, VAULT_PROXY_CONTROL_LISTEN: `127.0.0.1:${controlPort}`, VAULT_PROXY_CONTROL_TOKEN: token,
    VAULT_PROXY_CA_CERT: readFileSync(caFiles(caDir).certFile, 'utf8'), VAULT_PROXY_CA_KEY: readFileSync(caFiles(caDir).keyFile, 'utf8'),
  };
  proxy = await startPodVaultProxy({ env, logPath: path.join(ARTIFACTS, `vault-pod-${path.basename(tmp.dir)}.log`) });
}, 90_000);

afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
  await closeDb();
  tmp?.remove();
});

const bind = (id: string, auth?: string) =>
  request(`http://127.0.0.1:${controlPort}/session/${id}`, { method: 'PUT', headers: auth ? { authorization: auth } : {} });
const plainEcho = () => request(`http://127.0.0.1:${proxyPort}/ignored`, { path: `http://localhost:${upstream.httpPort}/echo` });

describe('the vault proxy in pod mode', () => {
  it('refuses every request with 503 while no session is bound, and forwards nothing', async () => {
    const seenBefore = upstream.seen.length;
    const plain = await plainEcho();
    expect(plain.status).toBe(503);
    expect(JSON.parse(plain.body)).toMatchObject({ error: { code: 'session_not_bound', details: { rule: 'session' } } });
    const agent = new TunnelAgent(proxyPort, caPem);
    await expect(request(`https://localhost:${upstream.httpsPort}/echo`, { agent })).rejects.toMatchObject({ statusCode: 503 });
    agent.destroy();
    expect(upstream.seen.length).toBe(seenBefore);
  });

  it('binds only with the token: a missing or wrong one is 401 and binds nothing', async () => {
    for (const auth of [undefined, `Bearer ${randomBytes(32).toString('hex')}`, `Bearer ${token.slice(1)}`, token]) {
      const res = await bind(sessionId, auth);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body).error.code).toBe('unauthorized');
      expect(res.body).not.toContain(token);
    }
    expect((await plainEcho()).status).toBe(503);
    expect((await bind('bad id!', `Bearer ${token}`)).status).toBe(400);
  });

  it('binds its one session once: the same again is a no-op, another is 409', async () => {
    await bindPodSession({ host: '127.0.0.1', port: controlPort, token, sessionId });
    await bindPodSession({ host: '127.0.0.1', port: controlPort, token, sessionId });
    const other = await bind('ses_someoneelse', `Bearer ${token}`);
    expect(other.status).toBe(409);
    expect(JSON.parse(other.body).error.code).toBe('already_bound');
    await expect(bindPodSession({ host: '127.0.0.1', port: controlPort, token, sessionId: 'ses_someoneelse' })).rejects.toThrow(/refused to bind session ses_someoneelse: 409/);
    await expect(bindPodSession({ host: '127.0.0.1', port: controlPort, token: 'x'.repeat(64), sessionId })).rejects.toThrow(/401 \(VAULT_PROXY_CONTROL_TOKEN differs/);
  });

  it('then swaps the stub for the real value over a TLS tunnel and scrubs the response', async () => {
    const sandboxEnv = await sandboxVaultEnv({ sessionId });
    const stub = sandboxEnv[credName]!;
    expect(stub).toMatch(/^stub_pod_/);
    expect(JSON.stringify(sandboxEnv)).not.toContain(canary);
    expect(sandboxEnv.SSL_CERT_FILE).toBeUndefined(); // the harness entrypoint sets the CA variables in a pod

    const agent = new TunnelAgent(proxyPort, caPem);
    const res = await request(`https://localhost:${upstream.httpsPort}/reflect`, { agent, headers: { authorization: `Bearer ${stub}` } });
    agent.destroy();
    expect(res.status).toBe(200);
    expect(upstream.seen.at(-1)!.headers.authorization).toBe(`Bearer ${canary}`);
    expect(res.headers['x-echo-auth']).toBe(`Bearer ${stub}`);
    expect(res.body).toBe(`you sent: Bearer ${stub} and `);
    const deadline = Date.now() + 5_000;
    let rows = await db().interception.findMany({ where: { sessionId } });
    while (rows.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      rows = await db().interception.findMany({ where: { sessionId } });
    }
    expect(rows[0]).toMatchObject({ host: 'localhost', path: '/reflect', credentialName: credName, decision: 'swapped' });
  });

  it('keeps serving its session after a restart, through the session file', async () => {
    await proxy.stop(5_000);
    proxy = await startPodVaultProxy({ env, logPath: path.join(ARTIFACTS, `vault-pod-${path.basename(tmp.dir)}.log`) });
    expect((await plainEcho()).status).toBe(200);
    expect((await bind('ses_someoneelse', `Bearer ${token}`)).status).toBe(409);
  });

  it('does not start in pod mode without its token and CA', async () => {
    const { VAULT_PROXY_CONTROL_TOKEN: _t, VAULT_PROXY_CA_KEY: _k, ...partial } = env;
    const started = run(process.execPath, ['--import', 'tsx', 'vault-proxy/main.ts'], { cwd: ROOT, env: partial });
    await expect(started).rejects.toMatchObject({
      code: 78,
      stderr: expect.stringContaining('pod mode (VAULT_PROXY_LISTEN is set) needs VAULT_PROXY_CONTROL_TOKEN, VAULT_PROXY_CA_KEY'),
    });
  });
});

describe('the CA from PEM (the Secret)', () => {
  it('signs leaves with an operator-made RSA CA too, and refuses a key that is not the certificate\'s', async () => {
    const files = (name: string) => ({ keyout: path.join(tmp.dir, `${name}.key`), out: path.join(tmp.dir, `${name}.crt`) });
    const rsa = files('rsa-ca');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=Operator CA', '-keyout', rsa.keyout, '-out', rsa.out]);
    const rsaCert = readFileSync(rsa.out, 'utf8');
    const ca = await CertificateAuthority.fromPem(rsaCert, readFileSync(rsa.keyout, 'utf8'));
    const server = tls.createServer({ SNICallback: (host, cb) => void ca.contextFor(host).then((c) => cb(null, c), cb) }, (s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const text = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'api.example.test', ca: rsaCert }, () => s.once('data', (d) => resolve(d.toString())));
      s.on('error', reject);
    });
    server.close();
    expect(text).toBe('ok');

    const other = files('other-ca');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30', '-subj', '/CN=Other', '-keyout', other.keyout, '-out', other.out]);
    await expect(CertificateAuthority.fromPem(rsaCert, readFileSync(other.keyout, 'utf8'), 'VAULT_PROXY_CA_CERT/VAULT_PROXY_CA_KEY')).rejects.toThrow(
      'VAULT_PROXY_CA_CERT/VAULT_PROXY_CA_KEY: the private key does not belong to the certificate',
    );
  });
});

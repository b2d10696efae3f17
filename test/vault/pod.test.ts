// The vault proxy in pod mode (a Kubernetes sandbox pod's sidecar), as a real process on TCP ports
// with neither a database nor the vault key in its environment: it forwards nothing until the worker
// binds its one session on the control port with the shared token and the session's view (built here
// from the test stack's Postgres by the worker's code), then swaps stubs and scrubs responses through
// a real TLS upstream; the worker drains its interception records into Postgres. Its CA comes from
// the environment, and its control port speaks only TLS signed by that CA: the worker sends nothing
// to a listener whose certificate the CA did not sign. A restarted proxy keeps its session id
// (session file) but waits for the next bind.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT } from '../../bin/stack/berth.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { CertificateAuthority, caFiles } from '../../vault-proxy/ca.ts';
import { drainResponseSchema } from '../../vault-proxy/view.ts';
import { startPodSidecar } from '../support/pod-sidecar.ts';
import { ARTIFACTS } from '../support/processes.ts';
import { TunnelAgent, request, startUpstream, type Upstream } from './support.ts';
import { tempDir } from '../support/temp.ts';

process.env.DATABASE_URL = inject('databaseUrl');
const { db, closeDb } = await import('../../lib/db.ts');
const { newId } = await import('../../lib/ids.ts');
const { keyringFromEnv, seal } = await import('../../lib/vault.ts');
const { bindPodSession, drainPodInterceptions, sandboxVaultEnv } = await import('../../vault-proxy/client.ts');
const { buildSessionView } = await import('../../vault-proxy/sessions.ts');
const { storeInterceptions } = await import('../../vault-proxy/record.ts');

const run = promisify(execFile);
const vaultKey = `t1:${randomBytes(32).toString('base64')}`;
const keyring = keyringFromEnv({ BERTH_VAULT_KEY: vaultKey });
const token = randomBytes(32).toString('hex');
const canary = `ghp_CANARY_${randomBytes(12).toString('hex')}`;
const credName = `POD_${randomBytes(3).toString('hex').toUpperCase()}`;

let tmp: ReturnType<typeof tempDir>;
let upstream: Upstream;
let proxy: Awaited<ReturnType<typeof startPodSidecar>>;
let env: NodeJS.ProcessEnv;
let logPath: string;
let proxyPort: number;
let controlPort: number;
let caPem: string;
let sessionId: string;
let agentId: string;
let credId: string;

beforeAll(async () => {
  tmp = tempDir('berth-vault-pod-');
  upstream = await startUpstream(tmp.dir);
  credId = newId('cred');
  const sealed = seal(keyring, canary, credId);
  await db().credential.create({
    data: { id: credId, teamId: 'team_default', name: credName, ciphertext: new Uint8Array(sealed.ciphertext), keyId: sealed.keyId, hosts: ['localhost'], inject: ['header'] },
  });
  const agent = await db().agent.create({
    data: { id: newId('agt'), teamId: 'team_default', name: 'pod vault test', model: 'scripted/none', tools: [], credentialIds: [credId], egress: { allow: ['localhost'] } },
  });
  agentId = agent.id;
  sessionId = (await db().session.create({ data: { id: newId('ses'), teamId: 'team_default', agentId } })).id;

  // The CA pair as the Secret holds it: PEM text in the environment, no files.
  const caDir = path.join(tmp.dir, 'secret-ca');
  caPem = (await CertificateAuthority.loadOrCreate(caDir)).certPem;
  [proxyPort, controlPort] = [await freePort(), await freePort()];
  // No DATABASE_URL, no BERTH_VAULT_KEY: the sidecar gets what it needs from the worker.
  env = {
    PATH: process.env.PATH, BERTH_DATA_DIR: path.join(tmp.dir, 'data'),
    VAULT_EXTRA_CA_FILE: upstream.caFile,
    VAULT_PROXY_SESSION_FILE: path.join(tmp.dir, 'session'),
    VAULT_PROXY_LISTEN: `127.0.0.1:${proxyPort}`, VAULT_PROXY_CONTROL_LISTEN: `127.0.0.1:${controlPort}`, VAULT_PROXY_CONTROL_TOKEN: token,
    VAULT_PROXY_CA_CERT: readFileSync(caFiles(caDir).certFile, 'utf8'), VAULT_PROXY_CA_KEY: readFileSync(caFiles(caDir).keyFile, 'utf8'),
  };
  logPath = path.join(ARTIFACTS, `vault-pod-${path.basename(tmp.dir)}.log`);
  proxy = await startPodSidecar({ env, logPath });
}, 90_000);

afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
  await closeDb();
  tmp?.remove();
});

const binding = (id = sessionId, t = token) => ({ host: '127.0.0.1', port: controlPort, ca: caPem, token: t, sessionId: id });
/** A request to the control port over TLS verified against the Berth CA. */
const control = (pathname: string, opts: Parameters<typeof request>[1] = {}) => request(`https://127.0.0.1:${controlPort}${pathname}`, { ca: caPem, agent: false, ...opts });
/** What the worker pushes: the session's view built from the database, without its id. */
const pushedView = async () => {
  const { sessionId: _id, ...view } = await buildSessionView(sessionId, keyring, {});
  return view;
};
const put = (id: string, auth?: string, body?: string) =>
  control(`/session/${id}`, { method: 'PUT', headers: auth ? { authorization: auth } : {}, body });
const rawDrain = async (body: object) => {
  const res = await control(`/session/${sessionId}/interceptions/drain`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return drainResponseSchema.parse(JSON.parse(res.body));
};
const plainEcho = () => request(`http://127.0.0.1:${proxyPort}/ignored`, { path: `http://localhost:${upstream.httpPort}/echo` });
const reflect = async (stub: string) => {
  const agent = new TunnelAgent(proxyPort, caPem);
  try {
    return await request(`https://localhost:${upstream.httpsPort}/reflect`, { agent, headers: { authorization: `Bearer ${stub}` } });
  } finally {
    agent.destroy();
  }
};

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
    const body = JSON.stringify(await pushedView());
    for (const auth of [undefined, `Bearer ${randomBytes(32).toString('hex')}`, `Bearer ${token.slice(1)}`, token]) {
      const res = await put(sessionId, auth, body);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body).error.code).toBe('unauthorized');
      expect(res.body).not.toContain(token);
    }
    expect((await plainEcho()).status).toBe(503);
    expect((await put('bad id!', `Bearer ${token}`, body)).status).toBe(400);
  });

  it('refuses a malformed view with 400 and the field, never echoing it, and stays unbound', async () => {
    const view = await pushedView();
    const cases: [string, string][] = [
      [JSON.stringify({ ...view, secrets: [{ ...view.secrets[0], stub: undefined }] }), 'secrets.0.stub'],
      [JSON.stringify({ ...view, secrets: [{ ...view.secrets[0], inject: ['smoke-signal'] }] }), 'secrets.0.inject.0'],
      [JSON.stringify({ ...view, egress: { ...view.egress, policy: { allow: [42] } } }), 'egress.policy.allow.0'],
      [JSON.stringify({ ...view, extra: canary }), '(body)'],
      ['{not json', '(body)'],
    ];
    for (const [body, field] of cases) {
      const res = await put(sessionId, `Bearer ${token}`, body);
      expect(res.status, field).toBe(400);
      expect(JSON.parse(res.body).error).toMatchObject({ code: 'bad_request', details: { field } });
      expect(res.body).not.toContain(canary);
    }
    expect((await plainEcho()).status).toBe(503);
  });

  it('binds its one session: binding it again replaces the view, another session is 409', async () => {
    await bindPodSession(binding(), await pushedView());
    await bindPodSession(binding(), await pushedView());
    const other = await put('ses_someoneelse', `Bearer ${token}`, JSON.stringify(await pushedView()));
    expect(other.status).toBe(409);
    expect(JSON.parse(other.body).error.code).toBe('already_bound');
    await expect(bindPodSession(binding('ses_someoneelse'), await pushedView())).rejects.toThrow(/refused to bind session ses_someoneelse: 409/);
    await expect(bindPodSession(binding(sessionId, 'x'.repeat(64)), await pushedView())).rejects.toThrow(/refused to bind session ses_\w+: 401/);
    expect(readFileSync(env.VAULT_PROXY_SESSION_FILE!, 'utf8')).toBe(sessionId); // the id only, never the view
  });

  it('swaps the stub for the real value over a TLS tunnel and scrubs the response', async () => {
    const sandboxEnv = await sandboxVaultEnv({ sessionId });
    const stub = sandboxEnv[credName]!;
    expect(stub).toMatch(/^stub_pod_/);
    expect(JSON.stringify(sandboxEnv)).not.toContain(canary);
    expect(sandboxEnv.SSL_CERT_FILE).toBeUndefined(); // the harness entrypoint sets the CA variables in a pod

    const res = await reflect(stub);
    expect(res.status).toBe(200);
    expect(upstream.seen.at(-1)!.headers.authorization).toBe(`Bearer ${canary}`);
    expect(res.headers['x-echo-auth']).toBe(`Bearer ${stub}`);
    expect(res.body).toBe(`you sent: Bearer ${stub} and `);
  });

  it('the control port speaks only TLS the Berth CA signed, for the address dialled', async () => {
    await expect(request(`http://127.0.0.1:${controlPort}/healthz`)).rejects.toThrow(); // no plain HTTP
    await expect(control('/healthz', { ca: undefined })).rejects.toMatchObject({ code: 'SELF_SIGNED_CERT_IN_CHAIN' }); // not a public CA's
    const res = await control('/healthz');
    expect(res.status).toBe(200);
  });

  it('the worker sends neither the token nor the view to a listener whose certificate the Berth CA did not sign', async () => {
    // What a sandbox process could do while its sidecar is down: listen on the control port itself,
    // with a self-signed certificate or one from a CA of its own, each for the address dialled.
    const selfSigned = { key: path.join(tmp.dir, 'self.key'), cert: path.join(tmp.dir, 'self.crt') };
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', selfSigned.key, '-out', selfSigned.cert]);
    const otherCa = await CertificateAuthority.loadOrCreate(path.join(tmp.dir, 'other-ca'));
    const impostors = [
      { key: readFileSync(selfSigned.key, 'utf8'), cert: readFileSync(selfSigned.cert, 'utf8') },
      await otherCa.issuePem(['127.0.0.1']),
    ];
    for (const pair of impostors) {
      let connections = 0;
      const received: Buffer[] = [];
      const impostor = tls.createServer(pair, (s) => {
        s.on('data', (c: Buffer) => received.push(c));
        s.on('error', () => undefined);
      });
      impostor.on('connection', () => connections++);
      await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
      const port = (impostor.address() as { port: number }).port;
      try {
        await expect(bindPodSession({ ...binding(), port }, await pushedView())).rejects.toThrow(
          /presented a certificate the Berth CA did not sign for 127\.0\.0\.1 \(\w+\): it is not the sidecar.*sent it neither the token nor the session's view/,
        );
        await expect(drainPodInterceptions({ ...binding(), port })).rejects.toThrow(/did not sign/);
        await new Promise((r) => setTimeout(r, 100)); // anything sent would have arrived by now
        expect(connections).toBe(2); // the worker did reach it and began the TLS handshake...
        expect(Buffer.concat(received).length).toBe(0); // ...and sent not one byte of a request
      } finally {
        impostor.close();
      }
    }
  });

  it('hands its records to the worker, which stores each once even when a drain is repeated', async () => {
    // A worker that stored the records and stopped before the next drain acknowledged them.
    const first = await rawDrain({ after: 0 });
    expect(first.records).toMatchObject([{ seq: 1, host: 'localhost' }]);
    await storeInterceptions(first.records.map(({ seq, ...r }) => ({ ...r, key: `${first.epoch}:${seq}` })));
    // The next worker drains from nothing: the same record again, stored once.
    await drainPodInterceptions(binding());
    await drainPodInterceptions(binding());
    const rows = await db().interception.findMany({ where: { sessionId } });
    expect(rows).toMatchObject([{ host: 'localhost', path: '/reflect', credentialName: credName, decision: 'swapped', key: `${first.epoch}:1` }]);
    const events = await db().sessionEvent.findMany({ where: { sessionId, type: 'credential.used' } });
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toMatchObject({ host: 'localhost', path: '/reflect', credential: credName });
    expect((await rawDrain({ after: 0 })).records).toEqual([]); // acknowledged
    expect(readFileSync(logPath, 'utf8')).not.toContain(canary);
  });

  it('stops swapping a credential once a re-bind no longer carries it', async () => {
    const stub = (await sandboxVaultEnv({ sessionId }))[credName]!;
    await db().agent.update({ where: { id: agentId }, data: { credentialIds: [] } });
    await bindPodSession(binding(), await pushedView());
    const res = await reflect(stub);
    expect(res.status).toBe(200);
    expect(upstream.seen.at(-1)!.headers.authorization).toBe(`Bearer ${stub}`);
    await db().agent.update({ where: { id: agentId }, data: { credentialIds: [credId] } });
  });

  it('after a restart keeps its session but forwards nothing until the next bind brings the view', async () => {
    await proxy.stop(5_000);
    proxy = await startPodSidecar({ env, logPath });
    const waiting = await plainEcho();
    expect(waiting.status).toBe(503);
    expect(JSON.parse(waiting.body).error).toMatchObject({ code: 'session_view_missing', message: expect.stringContaining('retry after the next tool call') });
    expect((await put('ses_someoneelse', `Bearer ${token}`, JSON.stringify(await pushedView()))).status).toBe(409);
    await bindPodSession(binding(), await pushedView());
    expect((await plainEcho()).status).toBe(200);
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

// The vault proxy as a process against the test stack's Postgres and LiteLLM gateway: sessions,
// credentials and policies come from the database; swaps and blocks land in interceptions and on the
// session's event stream; 100 MB pass each way with bounded proxy memory; no key, no start.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT } from '../../bin/stack/berth.ts';
import { startVaultProxy } from '../../bin/stack/vault-proxy.ts';
import { ARTIFACTS } from '../support/processes.ts';
import { TunnelAgent, bridge, download, request, startUpstream, stopVaultProxy, upload, type Upstream } from './support.ts';
import { tempDir } from '../support/temp.ts';

process.env.DATABASE_URL = inject('databaseUrl');
const { db, closeDb } = await import('../../lib/db.ts');
const { newId } = await import('../../lib/ids.ts');
const { keyringFromEnv, seal } = await import('../../lib/vault.ts');
const { prepareSandboxVault } = await import('../../vault-proxy/client.ts');

const run = promisify(execFile);
const vaultKey = `t1:${randomBytes(32).toString('base64')}`;
const canary = `ghp_CANARY_${randomBytes(12).toString('hex')}`;

let tmp: ReturnType<typeof tempDir>;
let upstream: Upstream;
let proxy: Awaited<ReturnType<typeof startVaultProxy>>;
let sessionId: string;
let sandboxEnv: Record<string, string>;
let hostDir: string;
let bridged: Awaited<ReturnType<typeof bridge>>;
let proxyEnv: NodeJS.ProcessEnv;

async function createSession(egress: unknown, credentialIds: string[]): Promise<string> {
  const agent = await db().agent.create({
    data: { id: newId('agt'), teamId: 'team_default', name: 'vault test', model: 'scripted/none', tools: [], credentialIds, egress: egress as object },
  });
  const session = await db().session.create({ data: { id: newId('ses'), teamId: 'team_default', agentId: agent.id } });
  return session.id;
}

beforeAll(async () => {
  tmp = tempDir('berth-vault-service-');
  upstream = await startUpstream(tmp.dir);
  const credId = newId('cred');
  const sealed = seal(keyringFromEnv({ BERTH_VAULT_KEY: vaultKey }), canary, credId);
  await db().credential.create({
    data: { id: credId, teamId: 'team_default', name: `GH_${randomBytes(3).toString('hex').toUpperCase()}`, ciphertext: new Uint8Array(sealed.ciphertext), keyId: sealed.keyId, hosts: ['localhost'], inject: ['header', 'basic_auth', 'query'] },
  });
  sessionId = await createSession({ allow: ['localhost', '127.0.0.1/32'] }, [credId]);
  proxyEnv = {
    PATH: process.env.PATH, BERTH_DATA_DIR: tmp.dir, DATABASE_URL: inject('databaseUrl'), BERTH_VAULT_KEY: vaultKey,
    VAULT_EXTRA_CA_FILE: upstream.caFile, LITELLM_GATEWAY_URL: inject('gatewayUrl'), LITELLM_API_KEY: inject('gatewayApiKey'),
  };
  proxy = await startVaultProxy({ env: proxyEnv, logPath: path.join(ARTIFACTS, `vault-service-${path.basename(tmp.dir)}.log`) });
  const prepared = await prepareSandboxVault({ runDir: proxy.runDir, sessionId, gatewayUrl: inject('gatewayUrl'), gatewayApiKey: inject('gatewayApiKey') });
  sandboxEnv = prepared.env;
  hostDir = prepared.hostDir;
  bridged = await bridge(path.join(hostDir, 'proxy.sock'));
});

afterAll(async () => {
  bridged?.server.close();
  await stopVaultProxy(proxy);
  await upstream?.close();
  await closeDb();
  tmp?.remove();
});

const stubFor = () => Object.entries(sandboxEnv).find(([k]) => k.startsWith('GH_'))!;
const curl = (args: string[]) =>
  run('curl', ['-sS', ...args], { env: { PATH: process.env.PATH, HTTPS_PROXY: `http://127.0.0.1:${bridged.port}`, http_proxy: `http://127.0.0.1:${bridged.port}`, CURL_CA_BUNDLE: path.join(hostDir, 'ca-bundle.crt') } });

async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the vault proxy process', () => {
  it('gives the sandbox stubs and proxy settings, never the value', () => {
    const [name, stub] = stubFor();
    expect(stub).toMatch(new RegExp(`^stub_${name.toLowerCase()}_[0-9a-z]{24}$`));
    expect(sandboxEnv.LITELLM_API_KEY).toMatch(/^stub_litellm_api_key_/);
    expect(sandboxEnv).toMatchObject({ HTTPS_PROXY: 'http://127.0.0.1:3128', SSL_CERT_FILE: '/run/berth/ca-bundle.crt', GIT_SSL_CAINFO: '/run/berth/ca-bundle.crt' });
    expect(JSON.stringify(sandboxEnv)).not.toContain(canary);
    expect(readFileSync(path.join(hostDir, 'ca-bundle.crt'), 'utf8')).not.toContain('PRIVATE KEY');
  });

  it('swaps a database credential for its bound host and records it in the table and the event stream', async () => {
    const [name, stub] = stubFor();
    const { stdout } = await curl(['-H', `Authorization: Bearer ${stub}`, `https://localhost:${upstream.httpsPort}/echo?x=1`]);
    expect(upstream.seen.at(-1)!.headers.authorization).toBe(`Bearer ${canary}`);
    expect(stdout).not.toContain(canary);
    const rows = await eventually(() => db().interception.findMany({ where: { sessionId } }), (r) => r.length > 0);
    expect(rows[0]).toMatchObject({ host: 'localhost', method: 'GET', path: '/echo', credentialName: name, decision: 'swapped' });
    const events = await eventually(() => db().sessionEvent.findMany({ where: { sessionId } }), (e) => e.length > 0);
    expect(events[0]).toMatchObject({ type: 'credential.used', data: expect.objectContaining({ credential: name, host: 'localhost' }) });
  });

  it('blocks the stub to an unbound host and refuses hosts outside the policy, recording both', async () => {
    const [name, stub] = stubFor();
    const { stdout } = await curl(['-H', `Authorization: Bearer ${stub}`, `https://127.0.0.1:${upstream.httpsPort}/echo`]);
    expect(JSON.parse(stdout).error.details.rule).toBe(`credential:${name}:unbound-host`);
    const refused = await curl(['-o', '/dev/null', '-w', '%{http_code}', 'http://169.254.169.254/latest/meta-data/']);
    expect(refused.stdout).toBe('403');
    const blocked = await eventually(
      () => db().sessionEvent.findMany({ where: { sessionId, type: 'egress.blocked' }, orderBy: { seq: 'asc' } }),
      (e) => e.length >= 2,
    );
    expect(blocked.map((e) => (e.data as { rule: string }).rule)).toEqual([`credential:${name}:unbound-host`, 'default:not-allowed']);
  });

  it('lets the sandbox reach the LiteLLM gateway with its stub key, by its address or as gateway.berth.internal', async () => {
    expect(sandboxEnv.LITELLM_BASE_URL).toBe('http://gateway.berth.internal');
    const https = sandboxEnv.LITELLM_BASE_URL!.replace('http:', 'https:');
    for (const base of [inject('gatewayUrl'), sandboxEnv.LITELLM_BASE_URL!, https]) {
      const { stdout } = await curl(['-H', `Authorization: Bearer ${sandboxEnv.LITELLM_API_KEY}`, `${base}/v1/models`]);
      expect(JSON.parse(stdout).data.length, base).toBeGreaterThan(0);
    }
  });

  it('never stores or logs the value: database rows and the proxy log are free of the canary', async () => {
    await proxy.stop();
    const tables = ['agents', 'sessions', 'session_events', 'interceptions', 'credentials', 'credential_stubs'];
    for (const t of tables) {
      const [row] = await db().$queryRawUnsafe<{ dump: string | null }[]>(`SELECT string_agg(t::text, '\n') AS dump FROM ${t} t`);
      expect(row?.dump ?? '', t).not.toContain(canary);
    }
    expect(readFileSync(proxy.logPath, 'utf8')).not.toContain(canary);
  });

  it('reopens the session listeners it had after a restart', async () => {
    if (proxy.running) await proxy.stop();
    proxy = await startVaultProxy({ env: proxyEnv, logPath: proxy.logPath });
    const [, stub] = stubFor();
    await curl(['-H', `x-token: ${stub}`, `https://localhost:${upstream.httpsPort}/echo`]);
    expect(upstream.seen.at(-1)!.headers['x-token']).toBe(canary);
  });
});

describe('streaming through the proxy process', () => {
  it('moves 100 MB up and 100 MB down with bounded proxy memory', async () => {
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proxy.pid}/status`, 'utf8'))![1]) * 1024;
    const agent = new TunnelAgent(bridged.port, readFileSync(path.join(hostDir, 'ca-bundle.crt'), 'utf8'));
    await request(`https://localhost:${upstream.httpsPort}/echo`, { agent }); // warm up: leaf cert, pools
    const baseline = rss();
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 50);
    try {
      const total = 100 << 20;
      const up = JSON.parse(await upload(`https://localhost:${upstream.httpsPort}/upload`, agent, total));
      expect(up.bytes).toBe(total);
      expect(await download(`https://localhost:${upstream.httpsPort}/download?mb=100`, agent)).toBe(total);
    } finally {
      clearInterval(sampler);
      agent.destroy();
    }
    expect(peak - baseline).toBeLessThan(64 << 20);
  });
});

describe('key rotation', () => {
  it('re-seals rows under the new key, after which the old key can go', async () => {
    const { seal: sealWith, open } = await import('../../lib/vault.ts');
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('base64');
    const id = newId('cred');
    const sealed = sealWith(keyringFromEnv({ BERTH_VAULT_KEY: `rot-old:${oldKey}` }), 'value-to-rotate', id);
    await db().credential.create({
      data: { id, teamId: 'team_default', name: `ROT_${randomBytes(3).toString('hex').toUpperCase()}`, ciphertext: new Uint8Array(sealed.ciphertext), keyId: 'rot-old', hosts: ['a.com'], inject: ['header'] },
    });
    const env = { PATH: process.env.PATH, DATABASE_URL: inject('databaseUrl'), BERTH_VAULT_KEYS: `rot-old:${oldKey},rot-new:${newKey}`, BERTH_VAULT_KEY_ID: 'rot-new' };
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'vault-proxy/rotate.ts'], { env, cwd: ROOT });
    expect(JSON.parse(stdout)).toMatchObject({ currentKey: 'rot-new', failed: 0 });
    expect(stdout).not.toContain('value-to-rotate');
    const row = await db().credential.findUniqueOrThrow({ where: { id } });
    expect(row.keyId).toBe('rot-new');
    expect(open(keyringFromEnv({ BERTH_VAULT_KEY: `rot-new:${newKey}` }), { keyId: row.keyId, ciphertext: Buffer.from(row.ciphertext) }, id)).toBe('value-to-rotate');
  });
});

describe('without a vault key', () => {
  it('the proxy and the web process stop at start with a message naming BERTH_VAULT_KEY', async () => {
    const { BERTH_VAULT_KEY: _none, ...env } = proxyEnv;
    for (const entry of ['vault-proxy/main.ts', 'bin/web.ts']) {
      const res = await run(process.execPath, ['--import', 'tsx', entry], { env, cwd: ROOT }).catch((e) => e);
      expect({ entry, code: res.code }).toEqual({ entry, code: 78 });
      expect(res.stderr).toContain('BERTH_VAULT_KEY');
    }
  });
});

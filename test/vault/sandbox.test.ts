// Enforcement in a real bubblewrap sandbox: curl, git, python urllib and node fetch reach a bound host
// only through the vault proxy (sandboxd's loopback bridge to the session's socket) and the upstream gets
// the real value; the sandbox's environment, /proc and files never hold it; a program that ignores the
// proxy variables reaches nothing.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sandboxPaths } from '../../activities/sandbox/local.ts';
import type { SandboxdClient } from '../../activities/sandbox/provider.ts';
import { ROOT } from '../../bin/stack/berth.ts';
import { startVaultProxy } from '../../bin/stack/vault-proxy.ts';
import { harness, run, type Harness } from '../sandbox/helpers.ts';
import { ARTIFACTS } from '../support/processes.ts';
import { startUpstream, stopVaultProxy, type Upstream } from './support.ts';

process.env.DATABASE_URL = inject('databaseUrl');
const { db, closeDb } = await import('../../lib/db.ts');
const { newId } = await import('../../lib/ids.ts');
const { keyringFromEnv, seal } = await import('../../lib/vault.ts');

const vaultKey = randomBytes(32).toString('base64');
const canary = `CANARY${randomBytes(12).toString('hex')}`;
const credName = 'GH_TOKEN';
const UPSTREAM = '127.0.0.2';
let h: Harness;
let upstream: Upstream;
let proxy: Awaited<ReturnType<typeof startVaultProxy>>;
let client: SandboxdClient;
let sessionId: string;

beforeAll(async () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'berth-vault-sbx-'));
  // Not localhost: inside the sandbox NO_PROXY keeps localhost and 127.0.0.1 for the sandbox's own services.
  upstream = await startUpstream(dataDir, UPSTREAM);
  const teamId = `team_vault_sbx_${randomBytes(4).toString('hex')}`;
  await db().team.create({ data: { id: teamId, name: 'vault sandbox test' } });
  const credId = newId('cred');
  const sealed = seal(keyringFromEnv({ BERTH_VAULT_KEY: vaultKey }), canary, credId);
  await db().credential.create({
    data: { id: credId, teamId, name: credName, ciphertext: new Uint8Array(sealed.ciphertext), keyId: sealed.keyId, hosts: [UPSTREAM], inject: ['header', 'basic_auth', 'query'] },
  });
  const agent = await db().agent.create({ data: { id: newId('agt'), teamId, name: 'sbx', model: 'm', tools: [], credentialIds: [credId], egress: { allow: [UPSTREAM] } } });
  sessionId = (await db().session.create({ data: { id: newId('ses'), teamId, agentId: agent.id } })).id;
  proxy = await startVaultProxy({
    env: { PATH: process.env.PATH, BERTH_DATA_DIR: dataDir, DATABASE_URL: inject('databaseUrl'), BERTH_VAULT_KEY: vaultKey, VAULT_EXTRA_CA_FILE: upstream.caFile },
    logPath: path.join(ARTIFACTS, `vault-sandbox-${path.basename(dataDir)}.log`),
  });
  h = harness(undefined, dataDir, { vault: { runDir: proxy.runDir } });
  ({ client } = await h.provider.ensure({ sessionId, env: { AGENT_VAR: 'x' } }));
  cpSync(path.join(ROOT, 'node_modules/undici'), path.join(sandboxPaths(dataDir, sessionId).workspace, 'node_modules/undici'), { recursive: true });
});

afterAll(async () => {
  await h?.provider.destroy(sessionId).catch(() => undefined);
  await h?.cleanup();
  await stopVaultProxy(proxy);
  await upstream?.close();
  await closeDb();
});

const url = (p: string) => `https://${UPSTREAM}:${upstream.httpsPort}${p}`;
const seenAuth = () => upstream.seen.at(-1)!.headers;

describe('clients inside the sandbox', () => {
  it('see a stub, the proxy variables and the CA bundle, never the value', async () => {
    const env = (await run(client, 'env')).stdout;
    expect(env).toMatch(new RegExp(`^${credName}=stub_gh_token_[0-9a-z]{24}$`, 'm'));
    expect(env).toContain('HTTPS_PROXY=http://127.0.0.1:3128');
    expect(env).toContain('AGENT_VAR=x');
    expect(env).not.toContain(canary);
    const bundle = await run(client, 'grep -c "BEGIN CERTIFICATE" $SSL_CERT_FILE; grep -c "PRIVATE KEY" $SSL_CERT_FILE; ls /run/berth');
    expect(bundle.stdout.split('\n').slice(0, 2).map(Number)).toEqual([expect.any(Number), 0]);
    expect(bundle.stdout).toContain('proxy.sock');
  });

  it('curl: the bound host gets the real token in a Bearer header', async () => {
    const r = await run(client, `curl -sS -H "Authorization: Bearer $${credName}" '${url('/echo')}'`);
    expect(r.exitCode).toBe(0);
    expect(seenAuth().authorization).toBe(`Bearer ${canary}`);
    expect(r.stdout).not.toContain(canary);
  });

  it('git: basic auth in the URL is decoded, swapped and re-encoded', async () => {
    await run(client, `git ls-remote "https://x-access-token:$${credName}@${UPSTREAM}:${upstream.httpsPort}/git/repo.git" 2>&1`, 30_000);
    const auth = upstream.seen.filter((s) => s.url.startsWith('/git/') && s.headers.authorization).at(-1)!.headers.authorization!;
    expect(Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString()).toBe(`x-access-token:${canary}`);
  });

  it('python urllib: a custom header is swapped', async () => {
    const py = `import urllib.request,os; print(urllib.request.urlopen(urllib.request.Request('${url('/echo')}', headers={'X-Api-Key': os.environ['${credName}']})).status)`;
    const r = await run(client, `python3 -c "${py}"`);
    expect(r.stdout.trim()).toBe('200');
    expect(seenAuth()['x-api-key']).toBe(canary);
  });

  it('node fetch (with EnvHttpProxyAgent: Node 20 fetch does not read HTTPS_PROXY itself): the query is swapped', async () => {
    const js = `import { EnvHttpProxyAgent, setGlobalDispatcher } from 'undici'; setGlobalDispatcher(new EnvHttpProxyAgent()); const r = await fetch('${url('/echo')}?token=' + process.env.${credName}); console.log(r.status);`;
    const r = await run(client, `cat > fetch.mjs <<'EOF'\n${js}\nEOF\nnode fetch.mjs`);
    expect(r.stdout.trim()).toBe('200');
    expect(upstream.seen.at(-1)!.url).toBe(`/echo?token=${canary}`);
  });

  it('a host outside the policy gets the 403 naming the rule', async () => {
    const r = await run(client, `curl -sS -o /dev/null -w '%{http_code}' -H "x: $${credName}" http://169.254.169.254/latest/meta-data/`);
    expect(r.stdout).toBe('403');
  });
});

describe('ignoring the proxy', () => {
  it('reaches nothing: no route, no interface but lo, and the host port is not there', async () => {
    const routes = await run(client, 'tail -n +2 /proc/net/route | wc -l; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "');
    expect(routes.stdout).toBe('0\nlo\n');
    const direct = await run(client, `curl -sS --noproxy '*' -m 5 '${url('/echo')}'`);
    expect(direct.exitCode).toBe(7); // couldn't connect: the upstream's port does not exist in here
    const py = await run(client, `python3 -c "import socket; socket.create_connection(('${UPSTREAM}', ${upstream.httpsPort}), timeout=3)"`);
    expect(py.stderr).toContain('ConnectionRefusedError');
  });
});

describe('the canary', () => {
  it('is nowhere in the sandbox: environments in /proc, files, the bound vault dir', async () => {
    const stub = (await run(client, `echo -n $${credName}`)).stdout;
    const procs = await run(client, `cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c -e '${canary}' -e '${stub}'`);
    expect(Number(procs.stdout)).toBeGreaterThan(0); // the grep does find the stub in there …
    // The pattern matches the canary without containing it, so grep's own command line does not count.
    const pattern = `${canary.slice(0, 6)}[${canary[6]}]${canary.slice(7)}`;
    const found = await run(client, `cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | grep -c -a '${pattern}'; grep -rla '${pattern}' /workspace /run /etc /tmp 2>/dev/null | wc -l`);
    expect(found.stdout).toBe('0\n0\n'); // … and never the value
  });

  it('is nowhere on the host side of the sandbox, in the proxy log or the database', () => {
    const hits = execFileSync('sh', ['-c', `grep -rla '${canary}' '${sandboxPaths(h.dataDir, sessionId).sessionDir}' '${proxy.runDir}' 2>/dev/null | wc -l`]).toString();
    expect(hits.trim()).toBe('0');
    expect(readFileSync(proxy.logPath, 'utf8')).not.toContain(canary);
  });
});

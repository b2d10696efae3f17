// The canary, end to end: a credential created over the API, an agent whose bash tool curls a bound
// host through the vault proxy, the real worker, web, Temporal, LiteLLM and a bubblewrap sandbox. The
// upstream gets the value; the transcript, events, Temporal history, logs, files and database never do.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sandboxPaths } from '../../activities/sandbox/local.ts';
import { startVaultProxy } from '../../bin/stack/vault-proxy.ts';
import { startBerth, type Berth } from '../support/berth.ts';
import { ARTIFACTS, TEST_VAULT_KEY } from '../support/processes.ts';
import { startUpstream, stopVaultProxy, type Upstream } from './support.ts';
import { tempDir } from '../support/temp.ts';

process.env.DATABASE_URL = inject('databaseUrl');
const UPSTREAM = '127.0.0.2'; // not localhost: a sandbox's NO_PROXY keeps that for itself
const canary = `CANARY${randomBytes(12).toString('hex')}`;
const NAME = `GH_TOKEN_${randomBytes(3).toString('hex').toUpperCase()}`; // team_default is shared by the test files
const pattern = `${canary.slice(0, 6)}[${canary[6]}]${canary.slice(7)}`; // matches the canary, is not it

let berth: Berth;
let upstream: Upstream;
let proxy: Awaited<ReturnType<typeof startVaultProxy>>;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  tmp = tempDir('berth-vault-platform-');
  upstream = await startUpstream(tmp.dir, UPSTREAM);
  berth = await startBerth({ name: 'vault-platform' });
  proxy = await startVaultProxy({
    env: {
      PATH: process.env.PATH, BERTH_DATA_DIR: berth.dataDir, DATABASE_URL: inject('databaseUrl'), BERTH_VAULT_KEY: TEST_VAULT_KEY,
      VAULT_EXTRA_CA_FILE: upstream.caFile, LITELLM_GATEWAY_URL: inject('gatewayUrl'), LITELLM_API_KEY: inject('gatewayApiKey'),
    },
    logPath: path.join(ARTIFACTS, `${path.basename(berth.dataDir)}.vault-proxy.log`),
  });
});

afterAll(async () => {
  await berth?.stop();
  await stopVaultProxy(proxy);
  await upstream?.close();
  tmp?.remove();
});

describe('a session using a credential', () => {
  it('reaches the bound host with the real value, and the value is nowhere in the platform', async () => {
    const cred = await berth.api.post('/v1/credentials', { name: NAME, value: canary, hosts: [UPSTREAM] });
    expect(cred.status).toBe(201);
    const model = berth.model('vault');
    const command = `curl -sS -H "Authorization: Bearer $${NAME}" https://${UPSTREAM}:${upstream.httpsPort}/reflect; echo; env | grep -c '^${NAME}=stub_'`;
    await berth.script(model, [{ tool_calls: [{ id: 'call_1', name: 'bash', arguments: { command } }] }, { text: 'done' }]);
    const agent = await berth.createAgent({ model, credential_ids: [cred.body.id], egress: { allow: [UPSTREAM] } });
    const session = await berth.api.post('/v1/sessions', { agent_id: agent.id });
    const sid = session.body.id as string;
    const sent = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'call the api' });
    expect(sent.body).toMatchObject({ outcome: 'completed', text: 'done' });

    // The upstream got the value; the agent saw its stub (scrubbed on the way back).
    expect(upstream.seen.find((s) => s.url === '/reflect')?.headers.authorization).toBe(`Bearer ${canary}`);
    const transcript = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as { role: string; content: string }[];
    const tool = transcript.find((m) => m.role === 'tool')!.content;
    expect(tool).toMatch(new RegExp(`^you sent: Bearer stub_${NAME.toLowerCase()}_[0-9a-z]{24} and \n1\n$`));

    const interceptions = (await berth.api.get(`/v1/sessions/${sid}/interceptions`)).body.data;
    expect(interceptions).toEqual([expect.objectContaining({ host: UPSTREAM, path: '/reflect', credential: NAME, decision: 'swapped' })]);
    const events = await berth.api.events(sid, { until: (e) => e.type === 'credential.used', timeoutMs: 10_000 });
    expect(events.find((e) => e.type === 'credential.used')?.data).toMatchObject({ credential: NAME, host: UPSTREAM });

    // Nowhere: the API's answers, Temporal history, the database, the logs, the sandbox's files.
    const everything = JSON.stringify([transcript, interceptions, events, cred.body, (await berth.api.get(`/v1/credentials/${cred.body.id}`)).body]);
    expect(everything).not.toContain(canary);
    const connection = await Connection.connect({ address: berth.temporalAddress });
    const history = await new Client({ connection }).workflow.getHandle(sid).fetchHistory();
    await connection.close();
    expect(JSON.stringify(history)).not.toContain(canary);
    const { db } = await import('../../lib/db.ts');
    for (const table of ['agents', 'sessions', 'messages', 'session_events', 'interceptions', 'credentials', 'credential_stubs', 'idempotency_keys']) {
      const [row] = await db().$queryRawUnsafe<{ dump: string | null }[]>(`SELECT string_agg(t::text, '\n') AS dump FROM ${table} t`);
      expect(row?.dump ?? '', table).not.toContain(canary);
    }
    const logs = readdirSync(ARTIFACTS).filter((f) => f.includes(path.basename(berth.dataDir)));
    expect(logs.length).toBeGreaterThanOrEqual(3); // worker, web, proxy
    for (const f of logs) expect(readFileSync(path.join(ARTIFACTS, f), 'utf8'), f).not.toContain(canary);
    const files = execFileSync('sh', ['-c', `grep -rla '${pattern}' '${sandboxPaths(berth.dataDir, sid).sessionDir}' '${proxy.runDir}' 2>/dev/null | wc -l`]).toString();
    expect(files.trim()).toBe('0');
  });
});

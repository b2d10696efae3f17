// The credentials API against real Postgres: values are sealed and never come back; bad input is a 400
// with field paths and stores nothing; agents attach credentials and carry an egress policy; a session's
// interceptions are listed for its team only.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { db } from '../../lib/db.ts';
import { newId } from '../../lib/ids.ts';
import { keyringFromEnv, open } from '../../lib/vault.ts';
import { startApi, type TestApi } from '../api/harness.ts';

const vaultKey = `api1:${randomBytes(32).toString('base64')}`;
const secret = `ghp_CANARY_${randomBytes(10).toString('hex')}`;
let t: TestApi;

beforeAll(async () => {
  t = await startApi('credentials', { env: { BERTH_VAULT_KEY: vaultKey } });
});
afterAll(async () => {
  await t?.stop();
});

const count = () => db().credential.count({ where: { teamId: t.teamId } });
const name = () => `TOKEN_${randomBytes(4).toString('hex').toUpperCase()}`;

describe('credentials', () => {
  it('stores the value sealed under the current key and never returns it', async () => {
    const created = await t.api.post('/v1/credentials', { name: 'GITHUB_TOKEN', value: secret, hosts: ['api.github.com', '*.GitHubUserContent.com'] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'GITHUB_TOKEN', hosts: ['api.github.com', '*.githubusercontent.com'], inject: ['header', 'basic_auth', 'query'], key_id: 'api1' });
    const id = created.body.id as string;
    const responses = [created, await t.api.get(`/v1/credentials/${id}`), await t.api.get('/v1/credentials')];
    for (const r of responses) expect(JSON.stringify(r.body)).not.toContain(secret);
    expect(responses[2]!.body.data.map((c: { id: string }) => c.id)).toContain(id);

    const row = await db().credential.findUniqueOrThrow({ where: { id } });
    expect(Buffer.from(row.ciphertext).includes(Buffer.from(secret))).toBe(false);
    expect(open(keyringFromEnv({ BERTH_VAULT_KEY: vaultKey }), { keyId: row.keyId, ciphertext: Buffer.from(row.ciphertext) }, id)).toBe(secret);
  });

  it('answers 400 with field paths for bad input and stores nothing', async () => {
    const before = await count();
    const cases: [Record<string, unknown>, string][] = [
      [{ name: name(), value: '', hosts: ['a.com'] }, 'value'],
      [{ name: name(), value: '   ', hosts: ['a.com'] }, 'value'],
      [{ name: name(), value: 'a\r\nx-injected: 1', hosts: ['a.com'] }, 'value'],
      [{ name: name(), value: 'v', hosts: ['https://a.com/x'] }, 'hosts.0'],
      [{ name: name(), value: 'v', hosts: ['*'] }, 'hosts.0'],
      [{ name: name(), value: 'v', hosts: [] }, 'hosts'],
      [{ name: name(), value: 'v', hosts: ['a.com'], inject: ['cookie'] }, 'inject.0'],
      [{ name: 'not a var', value: 'v', hosts: ['a.com'] }, 'name'],
      [{ name: name(), value: 'v', hosts: ['a.com'], extra: 1 }, 'extra'],
      [{ name: name(), hosts: ['a.com'] }, 'value'],
    ];
    for (const [body, path] of cases) {
      const res = await t.api.post('/v1/credentials', body);
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
      expect(JSON.stringify(res.body)).not.toContain('x-injected');
    }
    expect(await count()).toBe(before);
  });

  it('refuses a duplicate name with 409', async () => {
    const n = name();
    expect((await t.api.post('/v1/credentials', { name: n, value: 'one', hosts: ['a.com'] })).status).toBe(201);
    const dup = await t.api.post('/v1/credentials', { name: n, value: 'two', hosts: ['a.com'] });
    expect([dup.status, dup.body.error.code]).toEqual([409, 'conflict']);
  });

  it('patches (re-sealing a new value), rejects a bad patch unchanged, and deletes', async () => {
    const { body } = await t.api.post('/v1/credentials', { name: name(), value: 'first-value', hosts: ['a.com'], inject: ['header', 'body'] });
    const before = await db().credential.findUniqueOrThrow({ where: { id: body.id } });
    const bad = await t.api.patch(`/v1/credentials/${body.id}`, { hosts: ['bad host'] });
    expect(bad.status).toBe(400);
    const patched = await t.api.patch(`/v1/credentials/${body.id}`, { value: 'second-value', hosts: ['b.com'] });
    expect(patched.body).toMatchObject({ hosts: ['b.com'], inject: ['header', 'body'] });
    const after = await db().credential.findUniqueOrThrow({ where: { id: body.id } });
    expect(Buffer.from(after.ciphertext).equals(Buffer.from(before.ciphertext))).toBe(false);
    expect((await t.api.delete(`/v1/credentials/${body.id}`)).status).toBe(200);
    expect((await t.api.get(`/v1/credentials/${body.id}`)).status).toBe(404);
  });

  it("hides another team's credentials", async () => {
    const { body } = await t.adminApi.post('/v1/credentials', { name: name(), value: 'admin-team-value', hosts: ['a.com'] });
    expect((await t.api.get(`/v1/credentials/${body.id}`)).status).toBe(404);
    expect((await t.api.delete(`/v1/credentials/${body.id}`)).status).toBe(404);
    await t.adminApi.delete(`/v1/credentials/${body.id}`);
  });
});

describe('agents with credentials and an egress policy', () => {
  it('attaches the team’s credentials and stores the policy', async () => {
    const cred = await t.api.post('/v1/credentials', { name: name(), value: 'v', hosts: ['a.com'] });
    const agent = await t.api.post('/v1/agents', { name: 'a', model: 'm', credential_ids: [cred.body.id], egress: { allow: ['*.pypi.org', '10.0.0.0/8'] } });
    expect(agent.status).toBe(201);
    expect(agent.body).toMatchObject({ credential_ids: [cred.body.id], egress: { allow: ['*.pypi.org', '10.0.0.0/8'], deny: [] } });
    const plain = await t.api.post('/v1/agents', { name: 'b', model: 'm' });
    expect(plain.body).toMatchObject({ credential_ids: [], egress: { allow: [], deny: [] } });
  });

  it('refuses unknown or foreign credentials and bad policies', async () => {
    const foreign = await t.adminApi.post('/v1/credentials', { name: name(), value: 'v', hosts: ['a.com'] });
    for (const [body, path] of [
      [{ credential_ids: ['cred_nope'] }, 'credential_ids.0'],
      [{ credential_ids: [foreign.body.id] }, 'credential_ids.0'],
      [{ egress: { allow: ['10.0.0.0/99'] } }, 'egress.allow.0'],
      [{ egress: { allow: [], block: [] } }, 'egress.block'],
    ] as const) {
      const res = await t.api.post('/v1/agents', { name: 'x', model: 'm', ...body });
      expect(res.status).toBe(400);
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    }
    await t.adminApi.delete(`/v1/credentials/${foreign.body.id}`);
  });
});

describe('interceptions', () => {
  it("lists a session's swaps and blocks, oldest first, with a cursor; 404 for another team", async () => {
    const agent = await db().agent.create({ data: { id: newId('agt'), teamId: t.teamId, name: 'i', model: 'm', tools: [] } });
    const session = await db().session.create({ data: { id: newId('ses'), teamId: t.teamId, agentId: agent.id } });
    const base = { sessionId: session.id, host: 'api.github.com', method: 'GET', path: '/user' };
    await db().interception.createMany({
      data: [
        { ...base, credentialName: 'GITHUB_TOKEN', decision: 'swapped', rule: 'credential:GITHUB_TOKEN' },
        { ...base, host: 'evil.example', credentialName: 'GITHUB_TOKEN', decision: 'blocked', rule: 'credential:GITHUB_TOKEN:unbound-host' },
        { ...base, host: '169.254.169.254', credentialName: null, decision: 'blocked', rule: 'default:metadata' },
      ],
    });
    const first = await t.api.get(`/v1/sessions/${session.id}/interceptions?limit=2`);
    expect(first.body.data.map((i: { decision: string; host: string }) => [i.decision, i.host])).toEqual([['swapped', 'api.github.com'], ['blocked', 'evil.example']]);
    const rest = await t.api.get(`/v1/sessions/${session.id}/interceptions?limit=2&cursor=${first.body.next_cursor}`);
    expect(rest.body).toMatchObject({ data: [{ rule: 'default:metadata', credential: null }], next_cursor: null });
    expect((await t.adminApi.get(`/v1/sessions/${session.id}/interceptions`)).status).toBe(404);
  });
});

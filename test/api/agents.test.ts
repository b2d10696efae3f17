// Agents CRUD, soft delete, cursor pagination, Idempotency-Key replay, and another team's agents.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDEMPOTENCY_KEY_TTL_MS, sweepIdempotencyKeys } from '../../api/idempotency.ts';
import { db } from '../../lib/db.ts';
import { TOOL_NAMES } from '../../lib/types.ts';
import { rowCounts, startApi, type TestApi } from './harness.ts';

let t: TestApi;
beforeAll(async () => {
  t = await startApi('agents');
});
afterAll(async () => {
  await t?.stop();
});

describe('agents', () => {
  it('creates with defaults, reads, patches and soft-deletes', async () => {
    const created = await t.api.post('/v1/agents', { name: 'coder', model: 'gpt-x', env: { FOO: 'bar', _X1: '' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'coder', model: 'gpt-x', system_prompt: '', tools: [...TOOL_NAMES], env: { FOO: 'bar', _X1: '' } });
    expect(created.body.id).toMatch(/^agt_/);
    expect(Date.parse(created.body.created_at)).not.toBeNaN();
    const id = created.body.id as string;

    expect((await t.api.get(`/v1/agents/${id}`)).body).toEqual(created.body);

    const patched = await t.api.patch(`/v1/agents/${id}`, { system_prompt: 'Be brief.', tools: ['bash', 'read_file'] });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ id, name: 'coder', system_prompt: 'Be brief.', tools: ['bash', 'read_file'], env: { FOO: 'bar' } });
    expect(Date.parse(patched.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(created.body.updated_at));

    const deleted = await t.api.delete(`/v1/agents/${id}`);
    expect(deleted).toMatchObject({ status: 200, body: { id, deleted: true } });
    const row = await db().agent.findUniqueOrThrow({ where: { id } });
    expect(row.deletedAt).toBeInstanceOf(Date); // soft: the row stays for the sessions that used it

    for (const res of [await t.api.get(`/v1/agents/${id}`), await t.api.patch(`/v1/agents/${id}`, { name: 'x' }), await t.api.delete(`/v1/agents/${id}`)]) {
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    const listed = (await t.api.get('/v1/agents?limit=100')).body.data as { id: string }[];
    expect(listed.map((a) => a.id)).not.toContain(id);
  });

  it('paginates newest first with an opaque cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await t.api.post('/v1/agents', { name: `page-${i}`, model: 'm' })).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: { data: { id: string }[]; next_cursor: string | null } } = await t.api.get(
        `/v1/agents?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.data.map((a) => a.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    // Every agent of the team exactly once, newest first.
    const all = await db().agent.findMany({ where: { teamId: t.teamId, deletedAt: null }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
    expect(seen).toEqual(all.map((a) => a.id));
    expect(seen.slice(0, 5)).toEqual([...ids].reverse());

    const bad = await t.api.get('/v1/agents?cursor=not-a-cursor');
    expect(bad.status).toBe(400);
    expect(bad.body.error.details).toEqual([{ path: 'cursor', message: expect.any(String) }]);
  });

  it('replays a create with the same Idempotency-Key and refuses a different request with it', async () => {
    const before = await rowCounts(t.teamId);
    const key = { 'idempotency-key': `create-${Date.now()}` };
    const first = await t.api.post('/v1/agents', { name: 'once', model: 'm' }, key);
    const again = await t.api.post('/v1/agents', { name: 'once', model: 'm' }, key);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    const other = await t.api.post('/v1/agents', { name: 'twice', model: 'm' }, key);
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    const after = await rowCounts(t.teamId);
    expect(after.agents).toBe(before.agents + 1);
    expect(after.keys).toBe(before.keys + 1);
  });

  it('replays every other write with its Idempotency-Key', async () => {
    const k = (name: string) => ({ 'idempotency-key': `${name}-${Date.now()}` });
    const agent = (await t.api.post('/v1/agents', { name: 'replays', model: 'm' })).body.id as string;

    const patchKey = k('patch');
    const patched = await t.raw('PATCH', `/v1/agents/${agent}`, { body: '{"name":"renamed"}', headers: { 'content-type': 'application/json', ...patchKey } });
    const patchedAgain = await t.raw('PATCH', `/v1/agents/${agent}`, { body: '{"name":"renamed"}', headers: { 'content-type': 'application/json', ...patchKey } });
    expect(patched.status).toBe(200);
    expect(patchedAgain).toEqual(patched);
    const row = await db().agent.findUniqueOrThrow({ where: { id: agent } });
    expect(row.updatedAt.toISOString()).toBe(patched.body.updated_at); // written once

    const sessions = await db().session.count({ where: { teamId: t.teamId } });
    const sessionKey = k('session');
    const created = await t.api.post('/v1/sessions', { agent_id: agent }, sessionKey);
    expect(created.status).toBe(201);
    expect(await t.api.post('/v1/sessions', { agent_id: agent }, sessionKey)).toMatchObject({ status: 201, body: created.body });
    expect(await db().session.count({ where: { teamId: t.teamId } })).toBe(sessions + 1);

    // No worker serves this file: Temporal still accepts the signal, and terminating stands in for an operator.
    const abortKey = k('abort');
    const aborted = await t.api.post(`/v1/sessions/${created.body.id}/abort`, { reason: 'r' }, abortKey);
    expect(aborted.status).toBe(202);
    expect(await t.api.post(`/v1/sessions/${created.body.id}/abort`, { reason: 'r' }, abortKey)).toMatchObject({ status: 202, body: aborted.body });
    await t.temporal.workflow.getHandle(created.body.id).terminate('test');
    const endKey = k('end');
    const ended = await t.raw('DELETE', `/v1/sessions/${created.body.id}`, { headers: endKey });
    expect(ended.body.status).toBe('ended');
    expect(await t.raw('DELETE', `/v1/sessions/${created.body.id}`, { headers: endKey })).toEqual(ended);

    const deleteKey = k('delete');
    const deleted = await t.raw('DELETE', `/v1/agents/${agent}`, { headers: deleteKey });
    expect(deleted).toEqual({ status: 200, body: { id: agent, deleted: true } });
    expect(await t.raw('DELETE', `/v1/agents/${agent}`, { headers: deleteKey })).toEqual(deleted);
    expect((await t.raw('DELETE', `/v1/agents/${agent}`)).status).toBe(404);
  });

  it('an Idempotency-Key expires after 24 hours: then it is free again, and the sweep deletes it', async () => {
    const key = `expires-${Date.now()}`;
    const first = await t.api.post('/v1/agents', { name: 'day one', model: 'm' }, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    const aged = async (key: string, ms: number) =>
      db().idempotencyKey.update({ where: { teamId_key: { teamId: t.teamId, key } }, data: { createdAt: new Date(Date.now() - ms) } });
    await aged(key, IDEMPOTENCY_KEY_TTL_MS - 60_000);
    expect((await t.api.post('/v1/agents', { name: 'day two', model: 'm' }, { 'idempotency-key': key })).status).toBe(422);

    await aged(key, IDEMPOTENCY_KEY_TTL_MS + 60_000);
    const reused = await t.api.post('/v1/agents', { name: 'day two', model: 'm' }, { 'idempotency-key': key });
    expect(reused.status).toBe(201);
    expect(reused.body.id).not.toBe(first.body.id);

    const stale = `stale-${Date.now()}`;
    expect((await t.api.post('/v1/agents', { name: 'stale', model: 'm' }, { 'idempotency-key': stale })).status).toBe(201);
    await aged(stale, IDEMPOTENCY_KEY_TTL_MS + 60_000);
    expect(await sweepIdempotencyKeys()).toBeGreaterThanOrEqual(1);
    const left = await db().idempotencyKey.findMany({ where: { teamId: t.teamId, key: { in: [key, stale] } } });
    expect(left.map((k) => k.key)).toEqual([key]); // the fresh claim stays
  });

  it('a failed write releases its Idempotency-Key', async () => {
    const key = { 'idempotency-key': `fail-${Date.now()}` };
    const missing = await t.api.post('/v1/sessions', { agent_id: 'agt_missing' }, key);
    expect(missing.status).toBe(422);
    expect(await db().idempotencyKey.count({ where: { teamId: t.teamId, key: key['idempotency-key'] } })).toBe(0);
  });

  it("hides another team's agents (404, not listed)", async () => {
    const mine = (await t.api.post('/v1/agents', { name: 'private', model: 'm' })).body.id as string;
    expect((await t.adminApi.get(`/v1/agents/${mine}`)).status).toBe(404);
    expect((await t.adminApi.patch(`/v1/agents/${mine}`, { name: 'stolen' })).status).toBe(404);
    expect((await t.adminApi.delete(`/v1/agents/${mine}`)).status).toBe(404);
    expect((await t.adminApi.post('/v1/sessions', { agent_id: mine })).status).toBe(422);
    const theirs = (await t.adminApi.get('/v1/agents?limit=100')).body.data as { id: string }[];
    expect(theirs.map((a) => a.id)).not.toContain(mine);
    expect((await t.api.get(`/v1/agents/${mine}`)).body.name).toBe('private');
  });
});

// Sessions against the real Temporal server and the real worker: the workflow is started with the
// agent snapshot and search attributes, update-with-start carries a first message, ?wait=true
// answers when the turn ends, DELETE ends it, and an ended session refuses messages.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionLimits } from '../../lib/config.ts';
import { db } from '../../lib/db.ts';
import type { SessionInput } from '../../lib/types.ts';
import { searchAttributes, SESSION_WORKFLOW_TYPE } from '../../workflows/messages.ts';
import { registerScript } from '../support/processes.ts';
import { startApi, type TestApi } from './harness.ts';

let t: TestApi;
let agentId: string;
const model = `scripted/api-sessions-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  t = await startApi('sessions', { withWorker: true, env: { CONTAINER_ENV_API_TEST_FLAG: 'platform-only-value' } });
  await registerScript(model, {
    rules: [
      { match: 'slowly', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'sleep 60' } }] }, { text: 'slept' }] },
      { steps: [{ text: 'hello back' }] },
    ],
  });
  agentId = (await t.api.post('/v1/agents', { name: 'sessions', model, tools: ['bash'], env: { FOO: '1', API_TEST_FLAG: 'agent' } })).body.id;
});
afterAll(async () => {
  await t?.stop();
});

const newSession = async (body: Record<string, unknown> = {}) => {
  const res = await t.api.post('/v1/sessions', { agent_id: agentId, ...body });
  expect(res.status).toBe(201);
  return res.body;
};

describe('sessions', () => {
  it('starts the session workflow with the agent snapshot, limits and search attributes', async () => {
    const s = await newSession();
    expect(s).toMatchObject({
      agent_id: agentId,
      status: 'active',
      usage: { prompt_tokens: 0, completion_tokens: 0 },
      workflow_url: `${t.config.TEMPORAL_UI_URL}/namespaces/${t.config.TEMPORAL_NAMESPACE}/workflows/${s.id}`,
      ended_at: null,
      message: null,
    });
    const handle = t.temporal.workflow.getHandle(s.id);
    const d = await handle.describe();
    expect(d.type).toBe(SESSION_WORKFLOW_TYPE);
    expect(d.taskQueue).toBe(t.config.BERTH_TASK_QUEUE);
    expect(d.typedSearchAttributes.get(searchAttributes.agentId)).toBe(agentId);
    expect(d.typedSearchAttributes.get(searchAttributes.teamId)).toBe(t.teamId);
    expect(d.typedSearchAttributes.get(searchAttributes.status)).toBe('active');

    const history = await handle.fetchHistory();
    const payload = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    const input = JSON.parse(Buffer.from(payload.data!).toString('utf8')) as SessionInput;
    expect(input.sessionId).toBe(s.id);
    expect(input.agent).toMatchObject({ id: agentId, teamId: t.teamId, model, tools: ['bash'] });
    // The agent's env only: the worker adds CONTAINER_ENV_X to the sandbox, so platform values stay out of history.
    expect(input.agent.env).toEqual({ FOO: '1', API_TEST_FLAG: 'agent' });
    expect(JSON.stringify(history)).not.toContain('platform-only-value');
    expect(input.limits).toEqual(sessionLimits(t.config));
  });

  it('sends the first message with update-with-start, waits for a turn, and dedupes by Idempotency-Key', async () => {
    const s = await newSession({ message: 'hi' });
    expect(s.message).toEqual({ message_id: expect.any(String), seq: expect.any(Number), turn: 1 });

    const key = { 'idempotency-key': `msg-${s.id}` };
    const waited = await t.api.post(`/v1/sessions/${s.id}/messages?wait=true&timeout_s=60`, { content: 'again' }, key);
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ turn: 2, outcome: 'completed', text: 'hello back', error: null });
    // A retry is the same message: queued once, and its (already ended) turn is found at once.
    const retried = await t.api.post(`/v1/sessions/${s.id}/messages?wait=true&timeout_s=5`, { content: 'again' }, key);
    expect(retried).toMatchObject({ status: 200, body: waited.body });
    const plain = await t.api.post(`/v1/sessions/${s.id}/messages`, { content: 'again' }, key);
    expect(plain).toMatchObject({ status: 202, body: { message_id: waited.body.message_id, seq: waited.body.seq, turn: 2 } });

    const all = (await t.api.get(`/v1/sessions/${s.id}/messages`)).body.data as { seq: number; role: string; content: string }[];
    expect(all.map((m) => [m.role, m.content])).toEqual([['user', 'hi'], ['assistant', 'hello back'], ['user', 'again'], ['assistant', 'hello back']]);
    const paged: typeof all = [];
    let cursor: string | null = null;
    do {
      const res: { body: { data: typeof all; next_cursor: string | null } } = await t.api.get(
        `/v1/sessions/${s.id}/messages?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
      );
      paged.push(...res.body.data);
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(paged).toEqual(all);
    const tail = (await t.api.get(`/v1/sessions/${s.id}/messages?after_seq=${all[1]!.seq}`)).body.data as typeof all;
    expect(tail).toEqual(all.slice(2));

    const sums = await db().message.aggregate({ where: { sessionId: s.id }, _sum: { promptTokens: true, completionTokens: true } });
    const got = (await t.api.get(`/v1/sessions/${s.id}`)).body;
    expect(got.usage).toEqual({ prompt_tokens: sums._sum.promptTokens, completion_tokens: sums._sum.completionTokens });
    expect(got.usage.completion_tokens).toBeGreaterThan(0);
    expect(got.sandbox_state).not.toBe('removed');
  });

  it('answers 202 when ?wait=true times out first, and aborts the running turn', async () => {
    const s = await newSession();
    const res = await t.api.post(`/v1/sessions/${s.id}/messages?wait=true&timeout_s=1`, { content: 'sleep slowly' });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ message_id: expect.any(String), seq: expect.any(Number), turn: 1 });
    const aborted = await t.api.post(`/v1/sessions/${s.id}/abort`, { reason: 'enough' });
    expect(aborted).toMatchObject({ status: 202, body: { session_id: s.id, abort_requested: true } });
    const events = await t.api.events(s.id, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 30_000 });
    expect(events.at(-1)).toMatchObject({ type: 'turn.aborted', data: { turn: 1 } });
  });

  it('ends a session through its workflow; a second DELETE is fine; an ended session refuses messages', async () => {
    const s = await newSession({ message: 'hi' });
    const ended = await t.api.delete(`/v1/sessions/${s.id}`);
    expect(ended.status).toBe(200);
    expect(ended.body).toMatchObject({ id: s.id, status: 'ended', sandbox_state: 'removed', ended_at: expect.any(String) });
    const d = await t.temporal.workflow.getHandle(s.id).describe();
    expect(d.typedSearchAttributes.get(searchAttributes.status)).toBe('ended');

    const again = await t.api.delete(`/v1/sessions/${s.id}`);
    expect(again).toMatchObject({ status: 200, body: { id: s.id, status: 'ended', ended_at: ended.body.ended_at } });
    const before = await db().message.count({ where: { sessionId: s.id } });
    const msg = await t.api.post(`/v1/sessions/${s.id}/messages`, { content: 'late' });
    expect(msg).toMatchObject({ status: 409, body: { error: { code: 'session_ended' } } });
    expect((await t.api.post(`/v1/sessions/${s.id}/abort`, {})).status).toBe(409);
    expect(await db().message.count({ where: { sessionId: s.id } })).toBe(before);
  });

  it('lists newest first, filters by status, and hides other teams’ sessions', async () => {
    const a = await newSession();
    const b = await newSession();
    await t.api.delete(`/v1/sessions/${b.id}`);
    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { data: { id: string }[]; next_cursor: string | null } } = await t.api.get(
        `/v1/sessions?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      pages.push(...res.body.data.map((x) => x.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    const rows = await db().session.findMany({ where: { teamId: t.teamId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
    expect(pages).toEqual(rows.map((r) => r.id));
    expect(pages.slice(0, 2)).toEqual([b.id, a.id]);

    const ended = (await t.api.get('/v1/sessions?status=ended&limit=100')).body.data as { id: string; status: string }[];
    expect(ended.map((x) => x.id)).toContain(b.id);
    expect(ended.every((x) => x.status === 'ended')).toBe(true);
    const active = (await t.api.get('/v1/sessions?status=active&limit=100')).body.data as { id: string; status: string }[];
    expect(active.map((x) => x.id)).toContain(a.id);
    expect(active.map((x) => x.id)).not.toContain(b.id);

    for (const res of [
      await t.adminApi.get(`/v1/sessions/${a.id}`),
      await t.adminApi.get(`/v1/sessions/${a.id}/messages`),
      await t.adminApi.get(`/v1/sessions/${a.id}/events`),
      await t.adminApi.post(`/v1/sessions/${a.id}/messages`, { content: 'not yours' }),
      await t.adminApi.post(`/v1/sessions/${a.id}/abort`, {}),
      await t.adminApi.delete(`/v1/sessions/${a.id}`),
    ]) {
      expect(res).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    }
    const theirs = (await t.adminApi.get('/v1/sessions?limit=100')).body.data as { id: string }[];
    expect(theirs.map((x) => x.id)).not.toContain(a.id);
    expect((await t.api.get(`/v1/sessions/${a.id}`)).body.status).toBe('active');
  });
});

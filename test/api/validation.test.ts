// Bad input on every endpoint: the documented status, error code and field paths, and nothing
// written. Also auth, the body limit, health probes and the OpenAPI document.
import net from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { errorHandler } from '../../api/errors.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { db } from '../../lib/db.ts';
import { EventBus } from '../../lib/events.ts';
import { createLogger } from '../../lib/log.ts';
import { TEST_ADMIN_KEY } from '../support/processes.ts';
import { rowCounts, startApi, type TestApi } from './harness.ts';

let t: TestApi;
let agentId: string;
let deletedAgentId: string;
let sessionId: string;
let endedSessionId: string;
const unknownSession = 'ses_doesnotexist0000';

beforeAll(async () => {
  t = await startApi('validation');
  agentId = (await t.api.post('/v1/agents', { name: 'v', model: 'm' })).body.id;
  deletedAgentId = (await t.api.post('/v1/agents', { name: 'gone', model: 'm' })).body.id;
  await t.api.delete(`/v1/agents/${deletedAgentId}`);
  // No worker serves this file's task queue: the workflows start and wait, which is all these tests need.
  sessionId = (await t.api.post('/v1/sessions', { agent_id: agentId })).body.id;
  endedSessionId = (await t.api.post('/v1/sessions', { agent_id: agentId })).body.id;
  // A session whose workflow is gone (terminated by an operator) ends on DELETE all the same.
  await t.temporal.workflow.getHandle(endedSessionId).terminate('test');
  const ended = await t.api.delete(`/v1/sessions/${endedSessionId}`);
  expect(ended).toMatchObject({ status: 200, body: { id: endedSessionId, status: 'ended' } });
});
afterAll(async () => {
  await t?.stop();
});

const json = { 'content-type': 'application/json' };
type Case = [method: string, path: () => string, body: string | (() => string) | undefined, status: number, code: string, paths?: string[]];

const big = (field: string) => JSON.stringify({ [field]: 'x'.repeat(5000) });

const cases: Case[] = [
  // agents
  ['POST', () => '/v1/agents', '{"name":', 400, 'invalid_request', ['']],
  ['POST', () => '/v1/agents', '[1,2]', 400, 'invalid_request', ['']],
  ['POST', () => '/v1/agents', '{}', 400, 'invalid_request', ['name', 'model']],
  ['POST', () => '/v1/agents', '{"name":1,"model":"m","tools":"bash"}', 400, 'invalid_request', ['name', 'tools']],
  ['POST', () => '/v1/agents', '{"name":"a","model":"m","tools":["bash","sudo"]}', 400, 'invalid_request', ['tools.1']],
  ['POST', () => '/v1/agents', '{"name":"a","model":"m","tools":["bash","bash"]}', 400, 'invalid_request', ['tools']],
  ['POST', () => '/v1/agents', '{"name":"a","model":"m","env":{"1BAD":"x","OK":2}}', 400, 'invalid_request', ['env.1BAD', 'env.OK']],
  ['POST', () => '/v1/agents', '{"name":"a","model":"m","owner":"me"}', 400, 'invalid_request', ['owner']],
  ['POST', () => '/v1/agents', '{"name":"a\\u0000b","model":"m","env":{"X":"\\u0000"}}', 400, 'invalid_request', ['name', 'env.X']],
  ['POST', () => '/v1/agents', big('name'), 413, 'payload_too_large'],
  ['GET', () => '/v1/agents?limit=abc', undefined, 400, 'invalid_request', ['limit']],
  ['GET', () => '/v1/agents?limit=101', undefined, 400, 'invalid_request', ['limit']],
  ['GET', () => '/v1/agents/agt_nope', undefined, 404, 'not_found'],
  ['GET', () => '/v1/agents/%00', undefined, 404, 'not_found'],
  ['GET', () => `/v1/agents/${deletedAgentId}`, undefined, 404, 'not_found'],
  ['PATCH', () => `/v1/agents/${agentId}`, '{"model":', 400, 'invalid_request', ['']],
  ['PATCH', () => `/v1/agents/${agentId}`, '{"model":7,"id":"agt_x"}', 400, 'invalid_request', ['model', 'id']],
  ['PATCH', () => `/v1/agents/${agentId}`, big('system_prompt'), 413, 'payload_too_large'],
  ['PATCH', () => '/v1/agents/agt_nope', '{"name":"x"}', 404, 'not_found'],
  ['PATCH', () => `/v1/agents/${deletedAgentId}`, '{"name":"x"}', 404, 'not_found'],
  ['DELETE', () => '/v1/agents/agt_nope', undefined, 404, 'not_found'],
  // sessions
  ['POST', () => '/v1/sessions', '{"agent_id"', 400, 'invalid_request', ['']],
  ['POST', () => '/v1/sessions', '{"agent_id":5}', 400, 'invalid_request', ['agent_id']],
  ['POST', () => '/v1/sessions', () => `{"agent_id":"${agentId}","message":"   "}`, 400, 'invalid_request', ['message']],
  ['POST', () => '/v1/sessions', () => `{"agent_id":"${agentId}","model":"m"}`, 400, 'invalid_request', ['model']],
  ['POST', () => '/v1/sessions', '{"agent_id":"agt_nope"}', 422, 'agent_unusable', ['agent_id']],
  ['POST', () => '/v1/sessions', () => `{"agent_id":"${deletedAgentId}"}`, 422, 'agent_unusable', ['agent_id']],
  ['POST', () => '/v1/sessions', big('message'), 413, 'payload_too_large'],
  ['GET', () => '/v1/sessions?status=sleeping', undefined, 400, 'invalid_request', ['status']],
  ['GET', () => '/v1/sessions?cursor=%%%', undefined, 400, 'invalid_request', ['cursor']],
  ['GET', () => `/v1/sessions/${unknownSession}`, undefined, 404, 'not_found'],
  ['GET', () => '/v1/sessions/%00', undefined, 404, 'not_found'],
  ['DELETE', () => `/v1/sessions/${unknownSession}`, undefined, 404, 'not_found'],
  // messages
  ['POST', () => `/v1/sessions/${sessionId}/messages`, '{"content":', 400, 'invalid_request', ['']],
  ['POST', () => `/v1/sessions/${sessionId}/messages`, '{"content":["hi"]}', 400, 'invalid_request', ['content']],
  ['POST', () => `/v1/sessions/${sessionId}/messages`, '{"content":""}', 400, 'invalid_request', ['content']],
  ['POST', () => `/v1/sessions/${sessionId}/messages`, '{"content":"a\\u0000"}', 400, 'invalid_request', ['content']],
  ['POST', () => '/v1/sessions/ses_%00/messages', '{"content":"hi"}', 404, 'not_found'],
  ['POST', () => `/v1/sessions/${sessionId}/messages`, '{"content":"hi","role":"system"}', 400, 'invalid_request', ['role']],
  ['POST', () => `/v1/sessions/${sessionId}/messages?wait=maybe&timeout_s=0`, '{"content":"hi"}', 400, 'invalid_request', ['wait', 'timeout_s']],
  ['POST', () => `/v1/sessions/${sessionId}/messages`, big('content'), 413, 'payload_too_large'],
  ['POST', () => `/v1/sessions/${unknownSession}/messages`, '{"content":"hi"}', 404, 'not_found'],
  ['POST', () => `/v1/sessions/${endedSessionId}/messages`, '{"content":"hi"}', 409, 'session_ended'],
  ['GET', () => `/v1/sessions/${sessionId}/messages?after_seq=-1`, undefined, 400, 'invalid_request', ['after_seq']],
  ['GET', () => `/v1/sessions/${unknownSession}/messages`, undefined, 404, 'not_found'],
  // events and abort
  ['GET', () => `/v1/sessions/${sessionId}/events?after=x`, undefined, 400, 'invalid_request', ['after']],
  ['GET', () => `/v1/sessions/${unknownSession}/events`, undefined, 404, 'not_found'],
  ['POST', () => `/v1/sessions/${sessionId}/abort`, '{"reason":1,"force":true}', 400, 'invalid_request', ['reason', 'force']],
  ['POST', () => `/v1/sessions/${unknownSession}/abort`, '{}', 404, 'not_found'],
  ['POST', () => `/v1/sessions/${endedSessionId}/abort`, '{}', 409, 'session_ended'],
  ['GET', () => '/v1/nothing-here', undefined, 404, 'not_found'],
  // query parameters are strict too: a misspelt one is named, not ignored
  ['POST', () => `/v1/sessions/${sessionId}/messages?wiat=true`, '{"content":"hi"}', 400, 'invalid_request', ['wiat']],
  ['GET', () => '/v1/sessions?staus=active&limit=5', undefined, 400, 'invalid_request', ['staus']],
  ['GET', () => `/v1/sessions/${sessionId}?expand=agent`, undefined, 400, 'invalid_request', ['expand']],
  ['POST', () => `/v1/sessions/${sessionId}/abort?reason=why`, '{}', 400, 'invalid_request', ['reason']],
  // an empty JSON body reads as {}: the missing fields are named
  ['POST', () => '/v1/agents', '', 400, 'invalid_request', ['name', 'model']],
  // a known path with the wrong method
  ['PUT', () => `/v1/agents/${agentId}`, '{"name":"x"}', 405, 'method_not_allowed'],
  ['POST', () => `/v1/sessions/${sessionId}/events`, '{}', 405, 'method_not_allowed'],
];

describe('bad input', () => {
  it('gets the documented status, code and field paths on every endpoint, and writes nothing', async () => {
    const before = await rowCounts(t.teamId);
    const agentBefore = await db().agent.findUniqueOrThrow({ where: { id: agentId } });
    for (const [method, path, body, status, code, paths] of cases) {
      const text = typeof body === 'function' ? body() : body;
      const res = await t.raw(method, path(), { body: text, headers: text === undefined ? {} : json });
      const label = `${method} ${path()} ${text?.slice(0, 60) ?? ''}`;
      expect({ label, status: res.status, code: res.body?.error?.code }).toEqual({ label, status, code });
      expect(Object.keys(res.body)).toEqual(['error']);
      expect(res.body.error).toEqual({ code, message: expect.any(String), details: expect.any(Array) });
      if (paths) expect({ label, paths: res.body.error.details.map((d: { path: string }) => d.path) }).toEqual({ label, paths });
    }
    expect(await rowCounts(t.teamId)).toEqual(before);
    expect(await db().agent.findUniqueOrThrow({ where: { id: agentId } })).toEqual(agentBefore);
  });

  it('names the methods a path takes in the Allow header of a 405', async () => {
    const res = await fetch(`${t.url}/v1/agents/${agentId}`, { method: 'PUT', body: '{}', headers: { ...json, authorization: `Bearer ${t.key}` } });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('DELETE, GET, PATCH');
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(`PUT is not allowed on /v1/agents/${agentId}; it takes DELETE, GET, PATCH`);
  });

  it('reads an empty JSON body as {} where a body is optional (abort)', async () => {
    const res = await t.raw('POST', `/v1/sessions/${sessionId}/abort`, { body: '', headers: json });
    expect(res).toMatchObject({ status: 202, body: { session_id: sessionId, abort_requested: true } });
    // What `curl -X POST -H 'content-type: application/json'` sends: no body, and no Content-Length either.
    const { hostname: host, port } = new URL(t.url);
    const answer = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = net.connect(Number(port), host, () =>
        socket.write(
          `POST /v1/sessions/${sessionId}/abort HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${t.key}\r\n` +
            'Content-Type: application/json\r\nConnection: close\r\n\r\n',
        ),
      );
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 202 /);
    // A GET that says JSON (some clients put the header on every request) has no body to read.
    expect((await t.raw('GET', '/v1/agents?limit=1', { headers: json })).status).toBe(200);
  });

  it('answers 413 for a chunked body over the limit (no Content-Length)', async () => {
    const before = await rowCounts(t.teamId);
    const chunk = new TextEncoder().encode(`{"name":"${'y'.repeat(3000)}`);
    const body = new ReadableStream<Uint8Array>({
      start(ctrl) {
        ctrl.enqueue(chunk);
        ctrl.enqueue(new TextEncoder().encode(`${'y'.repeat(3000)}","model":"m"}`));
        ctrl.close();
      },
    });
    const res = await fetch(`${t.url}/v1/agents`, {
      method: 'POST',
      body,
      duplex: 'half',
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...json },
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
    expect(await rowCounts(t.teamId)).toEqual(before);
  });

  it('rejects a bad Last-Event-ID and an oversized Idempotency-Key', async () => {
    const sse = await t.raw('GET', `/v1/sessions/${sessionId}/events`, { headers: { 'last-event-id': 'abc' } });
    expect(sse.status).toBe(400);
    expect(sse.body.error.details[0].path).toBe('last-event-id');
    const before = await rowCounts(t.teamId);
    const key = await t.raw('POST', '/v1/agents', { body: '{"name":"k","model":"m"}', headers: { ...json, 'idempotency-key': 'k'.repeat(256) } });
    expect(key.status).toBe(400);
    expect(key.body.error.details[0].path).toBe('idempotency-key');
    expect(await rowCounts(t.teamId)).toEqual(before);
  });
});

describe('auth', () => {
  const endpoints: [string, string][] = [
    ['GET', '/v1/agents'],
    ['POST', '/v1/agents'],
    ['GET', '/v1/agents/agt_x'],
    ['PATCH', '/v1/agents/agt_x'],
    ['DELETE', '/v1/agents/agt_x'],
    ['GET', '/v1/sessions'],
    ['POST', '/v1/sessions'],
    ['GET', '/v1/sessions/ses_x'],
    ['DELETE', '/v1/sessions/ses_x'],
    ['POST', '/v1/sessions/ses_x/messages'],
    ['GET', '/v1/sessions/ses_x/messages'],
    ['GET', '/v1/sessions/ses_x/events'],
    ['POST', '/v1/sessions/ses_x/abort'],
  ];

  it('answers 401 without a key, with a wrong key, or with another scheme, and writes nothing', async () => {
    const before = await rowCounts(t.teamId);
    for (const [method, path] of endpoints) {
      for (const authorization of [undefined, `Bearer ${TEST_ADMIN_KEY}x`, `Basic ${TEST_ADMIN_KEY}`, 'Bearer ']) {
        const res = await fetch(t.url + path, {
          method,
          headers: { ...json, ...(authorization === undefined ? {} : { authorization }) },
          body: method === 'GET' || method === 'DELETE' ? undefined : '{"name":"a","model":"m","agent_id":"x"}',
        });
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect({ method, path, authorization, status: res.status, code: body.error.code }).toEqual({ method, path, authorization, status: 401, code: 'unauthorized' });
        expect(body.error.message).not.toContain(TEST_ADMIN_KEY);
      }
    }
    expect(await rowCounts(t.teamId)).toEqual(before);
  });

  it('serves /healthz, /readyz and the OpenAPI document without a key', async () => {
    expect(await (await fetch(`${t.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', checks: { database: 'ok', temporal: 'ok' } });

    const res = await fetch(`${t.url}/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = JSON.parse(await res.text()) as { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
    expect(doc.openapi).toMatch(/^3\./);
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    // Every route the app serves is documented (whoever adds routes later), and these at least exist.
    const served = t.app.routes
      .filter((r) => r.method !== 'ALL' && r.path !== '/v1/openapi.json')
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
    expect([...new Set(served)].sort()).toEqual([...documented].sort());
    expect(documented).toEqual(
      expect.arrayContaining([
        'GET /healthz', 'GET /readyz',
        'POST /v1/agents', 'GET /v1/agents', 'GET /v1/agents/{id}', 'PATCH /v1/agents/{id}', 'DELETE /v1/agents/{id}',
        'POST /v1/sessions', 'GET /v1/sessions', 'GET /v1/sessions/{id}', 'DELETE /v1/sessions/{id}',
        'POST /v1/sessions/{id}/messages', 'GET /v1/sessions/{id}/messages', 'GET /v1/sessions/{id}/events', 'POST /v1/sessions/{id}/abort',
      ]),
    );
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Error', 'Agent', 'AgentCreate', 'Session', 'Message', 'TurnResult']));
    const create = doc.paths['/v1/agents']!.post as { responses: Record<string, unknown> };
    expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '413']));
  });
});

describe('failures', () => {
  it('answers 500 internal with no message, stack or detail of the error', async () => {
    const app = new Hono();
    app.get('/boom', () => {
      throw new Error('db password=hunter2 at /work/main/api/x.ts:1:1');
    });
    app.onError(errorHandler(createLogger('api-test')));
    const res = await app.request('/boom');
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 'internal', message: 'internal error', details: [] } });
    expect(text).not.toMatch(/hunter2|\.ts|at /);
  });

  it('answers 503 when Temporal is unreachable, and leaves no active session behind', async () => {
    const dead = await Connection.lazy({ address: `127.0.0.1:${await freePort()}` });
    const app = createApp({
      config: { ...t.config, BERTH_TEMPORAL_DEADLINE_S: 3 },
      temporal: new Client({ connection: dead, namespace: t.config.TEMPORAL_NAMESPACE }),
      eventBus: new EventBus(),
      log: createLogger('api-test'),
      keyResolvers: [async (key) => (key === t.key ? t.teamId : undefined)],
    });
    const active = () => db().session.count({ where: { teamId: t.teamId, status: 'active' } });
    const before = await active();
    const res = await app.request('/v1/sessions', {
      method: 'POST',
      body: JSON.stringify({ agent_id: agentId }),
      headers: { ...json, authorization: `Bearer ${t.key}` },
    });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: { code: 'temporal_unavailable', message: expect.any(String), details: [] } });
    expect(await active()).toBe(before);
    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unavailable', checks: { database: 'ok', temporal: 'unreachable' } });
    // `dead` stays open: /readyz answers at its 2 s limit while the SDK's retry interceptor still holds
    // a backoff timer for the probe, and that timer throws "Channel has been shut down" on a closed
    // connection. Open, its last retry fails quietly on the deadline.
  }, 60_000);
});

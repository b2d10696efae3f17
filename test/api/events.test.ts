// The SSE endpoint against real Postgres: events appended with appendEvents (as the worker's
// activities do) while a client is connected arrive once, in seq order, and a reconnect with
// Last-Event-ID (or ?after=) resumes exactly after the last one seen.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { db } from '../../lib/db.ts';
import { appendEvents } from '../../lib/events.ts';
import type { NewSessionEvent } from '../../lib/types.ts';
import { apiClient } from '../support/api-client.ts';
import { TEST_ADMIN_KEY, startWeb, testEnv } from '../support/processes.ts';
import { startApi, type TestApi } from './harness.ts';

let t: TestApi;
let agentId: string;
beforeAll(async () => {
  t = await startApi('events'); // no worker: the only events are the ones these tests append
  agentId = (await t.api.post('/v1/agents', { name: 'events', model: 'm' })).body.id;
});
afterAll(async () => {
  await t?.stop();
});

interface Frame {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

/** A raw SSE connection: parsed events, comment lines, and whether the server closed it. */
function connect(sessionId: string, opts: { lastEventId?: number; query?: string; url?: string; key?: string } = {}) {
  const ctrl = new AbortController();
  const events: Frame[] = [];
  const comments: string[] = [];
  let closed = false;
  let failure: unknown;
  let waiters: Array<() => void> = [];
  const notify = () => {
    const ws = waiters;
    waiters = [];
    ws.forEach((w) => w());
  };
  const reading = (async () => {
    const res = await fetch(`${opts.url ?? t.url}/v1/sessions/${sessionId}/events${opts.query ?? ''}`, {
      headers: { authorization: `Bearer ${opts.key ?? t.key}`, ...(opts.lastEventId !== undefined ? { 'last-event-id': String(opts.lastEventId) } : {}) },
      signal: ctrl.signal,
    });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    if (!res.headers.get('content-type')?.startsWith('text/event-stream')) throw new Error('not an event stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let sep: number;
      while ((sep = buffer.indexOf('\n\n')) >= 0) {
        const lines = buffer.slice(0, sep).split('\n');
        buffer = buffer.slice(sep + 2);
        const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        if (lines.every((l) => l.startsWith(':'))) comments.push(...lines);
        else events.push({ id: Number(field('id')), type: field('event')!, data: JSON.parse(field('data')!) });
        notify();
      }
    }
  })()
    .catch((err: unknown) => {
      if (!ctrl.signal.aborted) failure = err;
    })
    .finally(() => {
      closed = true;
      notify();
    });
  const until = (ok: () => boolean, ms = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; got ${events.map((e) => e.id).join(',')}; ${String(failure ?? '')}`)), ms);
      const check = () => (ok() ? (clearTimeout(timer), resolve()) : void waiters.push(check));
      check();
    });
  return {
    events,
    comments,
    reading,
    /** Resolves once `n` events have arrived. */
    receive: (n: number, ms?: number) => until(() => events.length >= n, ms),
    until,
    closedByServer: async () => {
      await until(() => closed, 10_000);
      expect(failure).toBeUndefined();
    },
    close: async () => {
      ctrl.abort();
      await reading;
    },
  };
}

const ev = (key: string, type: NewSessionEvent['type'], data: Record<string, unknown>): NewSessionEvent => ({ key, type, data });
const newSession = async () => (await t.api.post('/v1/sessions', { agent_id: agentId })).body.id as string;
const ids = (frames: Frame[]) => frames.map((f) => f.id);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('GET /v1/sessions/:id/events', () => {
  it('replays stored events, then follows live ones, each once and in order', async () => {
    const sid = await newSession();
    await appendEvents(sid, [
      ev('m1', 'message.created', { message_id: 'msg_1', seq: 1, turn: 1, role: 'user', content: 'hi' }),
      ev('d1', 'message.delta', { turn: 1, step: 1, attempt: 1, text: 'Hel' }),
      ev('d2', 'message.delta', { turn: 1, step: 1, attempt: 1, text: 'lo' }),
    ]);
    const stream = connect(sid);
    await stream.receive(3);
    expect(stream.events).toEqual([
      { id: 1, type: 'message.created', data: { message_id: 'msg_1', seq: 1, turn: 1, role: 'user', content: 'hi' } },
      { id: 2, type: 'message.delta', data: { turn: 1, step: 1, attempt: 1, text: 'Hel' } },
      { id: 3, type: 'message.delta', data: { turn: 1, step: 1, attempt: 1, text: 'lo' } },
    ]);

    // Live: single appends, a batch, concurrent writers, and a retried (already written) key.
    await appendEvents(sid, [ev('t1', 'tool.started', { turn: 1, step: 1, call_id: 'c1', name: 'bash', arguments: '{}' })]);
    await appendEvents(sid, [ev('o1', 'tool.output', { turn: 1, call_id: 'c1', stream: 'stdout', data: 'x\n' }), ev('f1', 'tool.finished', { turn: 1, call_id: 'c1', name: 'bash', exit_code: 0, is_error: false })]);
    await Promise.all(range(1, 10).map((w) => appendEvents(sid, range(1, 5).map((i) => ev(`w${w}-${i}`, 'message.delta', { turn: 1, step: 2, attempt: 1, text: `${w}.${i}` })))));
    expect(await appendEvents(sid, [ev('t1', 'tool.started', { turn: 1 })])).toEqual([]);
    await appendEvents(sid, [ev('done', 'turn.completed', { turn: 1, text: 'Hello', usage: { prompt_tokens: 1, completion_tokens: 2 } })]);
    await stream.receive(57);
    await new Promise((r) => setTimeout(r, 300)); // anything extra would arrive now
    expect(ids(stream.events)).toEqual(range(1, 57));
    expect(stream.events.at(-1)).toEqual({ id: 57, type: 'turn.completed', data: { turn: 1, text: 'Hello', usage: { prompt_tokens: 1, completion_tokens: 2 } } });
    // Within each writer's batch, order is kept.
    const w3 = stream.events.filter((e) => String(e.data.text).startsWith('3.')).map((e) => e.data.text);
    expect(w3).toEqual(['3.1', '3.2', '3.3', '3.4', '3.5']);
    await stream.close();
  });

  it('resumes after Last-Event-ID (or ?after=), including events written while disconnected', async () => {
    const sid = await newSession();
    await appendEvents(sid, range(1, 5).map((i) => ev(`a${i}`, 'message.delta', { turn: 1, step: 1, attempt: 1, text: `${i}` })));
    const first = connect(sid);
    await first.receive(5);
    await first.close();
    const last = first.events.at(-1)!.id;

    await appendEvents(sid, range(6, 8).map((i) => ev(`a${i}`, 'message.delta', { turn: 1, step: 1, attempt: 1, text: `${i}` })));
    const resumed = connect(sid, { lastEventId: last });
    await resumed.receive(3);
    await appendEvents(sid, [ev('a9', 'step.retry', { turn: 1, step: 1, attempt: 2 })]);
    await resumed.receive(4);
    expect(ids(resumed.events)).toEqual([6, 7, 8, 9]);
    expect(resumed.events.map((e) => e.data.text ?? e.type)).toEqual(['6', '7', '8', 'step.retry']);
    await resumed.close();

    const viaQuery = connect(sid, { query: '?after=7' });
    await viaQuery.receive(2);
    expect(ids(viaQuery.events)).toEqual([8, 9]);
    await viaQuery.close();
    // The header wins over the query when both are sent.
    const both = connect(sid, { lastEventId: 8, query: '?after=1' });
    await both.receive(1);
    expect(ids(both.events)).toEqual([9]);
    await both.close();
  });

  it('delivers events too large for a notification, in order with those around them', async () => {
    const sid = await newSession();
    const stream = connect(sid);
    await new Promise((r) => setTimeout(r, 200)); // connected: what follows is live
    // A notification carries an event of up to 8000 bytes; a larger one is read from the table.
    const small = (n: number) => ev(`s${n}`, 'message.delta', { turn: 1, step: 1, attempt: 1, text: `${n}` });
    const big = (n: number) => ev(`b${n}`, 'tool.output', { turn: 1, call_id: 'c1', stream: 'stdout', data: `${n}`.padEnd(20_000, '.') });
    await appendEvents(sid, [small(1)]);
    await appendEvents(sid, [big(2)]);
    await appendEvents(sid, [small(3), big(4), small(5)]);
    await appendEvents(sid, [small(6)]);
    await stream.receive(6);
    await new Promise((r) => setTimeout(r, 300)); // anything extra would arrive now
    expect(ids(stream.events)).toEqual(range(1, 6));
    expect(stream.events.map((e) => String(e.data.text ?? e.data.data).length)).toEqual([1, 20_000, 1, 20_000, 1, 1]);
    await stream.close();
  });

  it("shrugs off a notification on its channel that is not the trigger's", async () => {
    const sid = await newSession();
    const stream = connect(sid);
    await appendEvents(sid, [ev('n1', 'message.delta', { turn: 1, step: 1, attempt: 1, text: '1' })]);
    await stream.receive(1);
    await db().$executeRaw`SELECT pg_notify('session_events_v2', 'not json')`;
    await db().$executeRaw`SELECT pg_notify('session_events_v2', ${JSON.stringify({ session_id: sid, seq: 7, type: 'message.delta', data: { text: 'forged' } })})`;
    await appendEvents(sid, [ev('n2', 'message.delta', { turn: 1, step: 1, attempt: 1, text: '2' })]);
    await stream.receive(2);
    await new Promise((r) => setTimeout(r, 300)); // anything extra would arrive now
    expect(stream.events.map((e) => [e.id, e.data.text])).toEqual([[1, '1'], [2, '2']]);
    await stream.close();
  });

  it("still announces new events on the previous release's channel, for its web processes during a rolling deploy", async () => {
    const sid = await newSession();
    const listener = new pg.Client({ connectionString: t.config.DATABASE_URL });
    await listener.connect();
    try {
      const payloads: string[] = [];
      listener.on('notification', (n) => n.payload?.startsWith(`${sid}:`) && payloads.push(n.payload));
      await listener.query('LISTEN session_events');
      await appendEvents(sid, [ev('o1', 'message.delta', { turn: 1, step: 1, attempt: 1, text: 'a' }), ev('o2', 'turn.completed', { turn: 1 })]);
      await expect.poll(() => payloads).toEqual([`${sid}:1`, `${sid}:2`]);
    } finally {
      await listener.end();
    }
  });

  it('fans out to several clients of one session, and ends the stream after the session ends', async () => {
    const sid = await newSession();
    const clients = [connect(sid), connect(sid), connect(sid, { lastEventId: 0 })];
    await new Promise((r) => setTimeout(r, 200));
    await appendEvents(sid, [ev('s1', 'session.status', { status: 'active', sandbox: 'running' })]);
    await appendEvents(sid, [ev('s2', 'session.status', { status: 'ended', sandbox: 'removed' })]);
    for (const c of clients) {
      await c.closedByServer();
      expect(c.events).toEqual([
        { id: 1, type: 'session.status', data: { status: 'active', sandbox: 'running' } },
        { id: 2, type: 'session.status', data: { status: 'ended', sandbox: 'removed' } },
      ]);
    }
  });

  it('replays an ended session from Last-Event-ID and closes', async () => {
    const sid = await newSession();
    await appendEvents(sid, range(1, 3).map((i) => ev(`e${i}`, 'message.delta', { turn: 1, step: 1, attempt: 1, text: `${i}` })));
    await t.temporal.workflow.getHandle(sid).terminate('test'); // no worker here: end it the operator's way
    expect((await t.api.delete(`/v1/sessions/${sid}`)).body.status).toBe('ended');
    const stream = connect(sid, { lastEventId: 1 });
    await stream.closedByServer();
    expect(ids(stream.events)).toEqual([2, 3]);
  });

  it('ends its streams cleanly when its web process is told to stop, so clients resume elsewhere at once', async () => {
    // A web process of its own (this file's API runs in the test's process), with the admin key.
    const web = await startWeb(testEnv('events-web'));
    try {
      const admin = apiClient(web.url, TEST_ADMIN_KEY);
      const agent = (await admin.post('/v1/agents', { name: 'events-web', model: 'm' })).body.id;
      const sid = (await admin.post('/v1/sessions', { agent_id: agent })).body.id;
      await appendEvents(sid, [ev('s1', 'session.status', { status: 'active', sandbox: 'none' })]);
      const stream = connect(sid, { url: web.url, key: TEST_ADMIN_KEY });
      await stream.receive(1);
      const stopAt = Date.now();
      const stopping = web.stop(); // SIGTERM: the stream ends now, not when the grace cuts the connection
      await stream.closedByServer(); // a cut connection would fail the read ('terminated')
      await stopping;
      // Nor does the process wait out its 5 s grace for the stream, or for the client to drop its connection.
      expect(Date.now() - stopAt).toBeLessThan(3_000);
      await appendEvents(sid, [ev('s2', 'session.status', { status: 'active', sandbox: 'running' })]);
      const resumed = connect(sid, { lastEventId: stream.events.at(-1)!.id, url: t.url, key: TEST_ADMIN_KEY });
      await resumed.receive(1);
      expect(ids(resumed.events)).toEqual([2]);
      await resumed.close();
    } finally {
      await web.stop();
    }
  });

  it('sends a keep-alive comment every 15 s while nothing happens', async () => {
    const sid = await newSession();
    const stream = connect(sid);
    await stream.until(() => stream.comments.length > 0, 20_000);
    expect(stream.comments[0]).toMatch(/^:/);
    expect(stream.events).toEqual([]);
    await stream.close();
  }, 30_000);
});

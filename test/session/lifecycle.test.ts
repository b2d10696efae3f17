// Abort, idle hibernation, continue-as-new and the end of a session.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBerth, type Berth } from '../support/berth.ts';
import { assertOrderedOnce } from '../support/assertions.ts';

let berth: Berth;
beforeAll(async () => {
  berth = await startBerth({
    name: 'lifecycle',
    env: { BERTH_IDLE_TIMEOUT_S: '3', BERTH_CONTINUE_AS_NEW_EVENTS: '100', BERTH_CLOSED_SESSION_SWEEP_S: '1' },
  });
});
afterAll(async () => {
  await berth?.stop();
});

const hostProcesses = (pattern: string) => execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((l) => l.includes(pattern));

describe('session lifecycle', () => {
  it('abort during a long tool call kills the process, ends the turn as aborted, and the next message works', async () => {
    const model = berth.model('abort');
    await berth.script(model, {
      rules: [
        { match: 'long', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'sleep 987 & sleep 986; wait' } }] }, { text: 'never' }] },
        { match: 'again', steps: [{ text: 'back to work' }] },
      ],
    });
    const sid = await berth.newSession(model);
    await berth.sendUntilToolStarted(sid, 'do the long thing');
    await expect.poll(() => hostProcesses('sleep 987').length, { timeout: 10_000 }).toBeGreaterThan(0);

    const aborted = await berth.api.post(`/v1/sessions/${sid}/abort`, {});
    expect(aborted.status).toBe(202);
    const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 30_000 });
    expect(events.at(-1)).toMatchObject({ type: 'turn.aborted', data: { turn: 1 } });
    expect(hostProcesses('sleep 987')).toEqual([]);
    expect(hostProcesses('sleep 986')).toEqual([]);

    const next = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'again' });
    expect(next.status).toBe(200);
    const t = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(t.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    // The model was told the interrupted call has no result, so the conversation stays well-formed.
    const last = (await berth.requests(model)).at(-1);
    expect(last.messages.find((m: any) => m.role === 'tool')?.content).toMatch(/interrupted/);
    // The aborted call had started the sandbox: it is left to the idle timer, like any other.
    await berth.api.events(sid, { until: (e) => e.type === 'session.status' && e.data.status === 'hibernated', timeoutMs: 20_000 });
    expect(await berth.sandboxRunning(sid)).toBe(false);
  });

  it('abort during a streaming model step closes the stream and keeps the text already shown', async () => {
    const model = berth.model('abort-stream');
    const chunks = Array.from({ length: 20 }, (_, i) => `word${i} `);
    await berth.script(model, [{ text: chunks.join(''), chunks, chunk_delay_ms: 400 }]);
    const sid = await berth.newSession(model);
    const streaming = berth.api.events(sid, { until: (_e, all) => all.filter((e) => e.type === 'message.delta').length >= 2 });
    await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'talk for a while' });
    await streaming;
    await berth.api.post(`/v1/sessions/${sid}/abort`, {});
    const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 20_000 });
    expect(events.at(-1)).toMatchObject({ type: 'turn.aborted', data: { turn: 1 } });
    const t = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(t.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(chunks.join('').startsWith(t[1].content)).toBe(true);
    expect(t[1].content.length).toBeLessThan(chunks.join('').length);
  });

  it('hibernates an idle sandbox and wakes it with the next message', async () => {
    const model = berth.model('idle');
    await berth.script(model, {
      rules: [
        { match: 'first', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'echo 1 > state.txt' } }] }, { text: 'one' }] },
        { match: 'second', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'cat state.txt' } }] }, { text: 'two' }] },
      ],
    });
    const sid = await berth.newSession(model);
    await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'first' });
    await berth.api.events(sid, { until: (e) => e.type === 'session.status' && e.data.status === 'hibernated', timeoutMs: 20_000 });
    const hibernated = (await berth.api.get(`/v1/sessions/${sid}`)).body;
    expect(hibernated).toMatchObject({ status: 'hibernated', sandbox_state: 'hibernated' });
    expect(await berth.sandboxRunning(sid)).toBe(false);

    await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'second' });
    const t = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(t.at(-2).content).toBe('1\n');
    expect((await berth.api.get(`/v1/sessions/${sid}`)).body).toMatchObject({ status: 'active', sandbox_state: 'running' });
  });

  it('continues as new when history grows, keeping the conversation', async () => {
    const model = berth.model('can');
    await berth.script(model, [{ tool_calls: [{ name: 'bash', arguments: { command: 'echo -n x >> count.txt' } }] }, { text: 'counted' }]);
    const sid = await berth.newSession(model);
    const connection = await Connection.connect({ address: berth.temporalAddress });
    const client = new Client({ connection });
    const firstRun = (await client.workflow.getHandle(sid).describe()).runId;
    const key = { 'idempotency-key': `first-${sid}` };
    let first: any;
    for (let i = 0; i < 8; i++) {
      const res = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: `count ${i}` }, i === 0 ? key : undefined);
      expect(res.status).toBe(200);
      first ??= res.body;
    }
    const described = await client.workflow.getHandle(sid).describe();
    expect(described.runId).not.toBe(firstRun);
    // A retry of the first request, after the run that took it continued as new: the same answer.
    const retried = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'count 0' }, key);
    expect(retried.status).toBe(200);
    expect(retried.body).toEqual(first);
    expect(described.status.name).toBe('RUNNING');
    // The workflow checks its history between turns, so a run passes 100 events by up to a turn's own
    // (about 22 here, more when a workflow task times out under load). All 8 turns in one run: about 180.
    expect(described.historyLength).toBeLessThan(150);
    const t = (await berth.api.get(`/v1/sessions/${sid}/messages?limit=100`)).body.data as any[];
    expect(t.filter((m) => m.role === 'user')).toHaveLength(8);
    expect(new Set(t.map((m) => m.seq)).size).toBe(t.length);
    const events = await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' && e.data.turn === 8 });
    assertOrderedOnce(events);
    await connection.close();
  });

  it('holds at most 512 KiB of messages waiting for their turn: one more is 409 queue_full; those taken are answered across continue-as-new', async () => {
    const model = berth.model('queue');
    await berth.script(model, {
      rules: [
        { match: 'slow', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'sleep 3' } }] }, { text: 'slept' }] },
        { match: 'quick', steps: [{ text: 'ok' }] },
      ],
    });
    const sid = await berth.newSession(model);
    const connection = await Connection.connect({ address: berth.temporalAddress });
    const handle = new Client({ connection }).workflow.getHandle(sid);
    // Enough turns that the run continues as new (at 100 events here) while the big messages wait.
    for (let i = 0; i < 7; i++) expect((await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: `quick ${i}` })).status).toBe(200);
    const firstRun = (await handle.describe()).runId;
    await berth.sendUntilToolStarted(sid, 'be slow');

    const kib = (n: number, tag: string) => `quick ${tag} ${'x'.repeat(n * 1024 - 9)}`;
    for (const tag of ['a', 'b']) expect((await berth.api.post(`/v1/sessions/${sid}/messages`, { content: kib(200, tag) })).status).toBe(202);
    const full = await berth.api.post(`/v1/sessions/${sid}/messages`, { content: kib(200, 'c') });
    expect(full).toMatchObject({ status: 409, body: { error: { code: 'queue_full' } } });
    expect(full.body.error.message).toBe(
      '2 messages are waiting for their turn (400 KiB); with this one (200 KiB) that passes the 512 KiB a session holds: send it once they are answered',
    );
    const alone = await berth.api.post(`/v1/sessions/${sid}/messages`, { content: kib(513, 'd') });
    expect(alone).toMatchObject({ status: 400, body: { error: { details: [{ path: 'content', message: 'must be at most 512 KiB (UTF-8)' }] } } });

    await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' && e.data.turn === 10, timeoutMs: 60_000 });
    const described = await handle.describe();
    expect(described.runId).not.toBe(firstRun);
    expect(described.status.name).toBe('RUNNING');
    const users = ((await berth.api.get(`/v1/sessions/${sid}/messages?limit=100`)).body.data as any[]).filter((m) => m.role === 'user');
    expect(users.map((m) => m.content.slice(0, 7))).toEqual([...Array.from({ length: 7 }, (_, i) => `quick ${i}`), 'be slow', 'quick a', 'quick b']);
    await connection.close();
  });

  it('ending a session removes the sandbox and refuses further messages with 409', async () => {
    const model = berth.model('end');
    await berth.script(model, [{ tool_calls: [{ name: 'bash', arguments: { command: 'touch here' } }] }, { text: 'bye' }]);
    const sid = await berth.newSession(model);
    await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'hi' });
    expect(existsSync(berth.workspace(sid, 'here'))).toBe(true);
    // A plain send: the web process has now seen the session open and no longer reads its row for one.
    expect((await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'again' })).status).toBe(202);
    await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' && e.data.turn === 2 });
    expect((await berth.api.delete(`/v1/sessions/${sid}`)).status).toBeLessThan(300);
    expect((await berth.api.get(`/v1/sessions/${sid}`)).body).toMatchObject({ status: 'ended', sandbox_state: 'removed' });
    expect(existsSync(berth.workspace(sid, 'here'))).toBe(false);
    expect(await berth.sandboxRunning(sid)).toBe(false);
    const late = await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'still there?' });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('session_ended');
    const transcript = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(transcript.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['hi', 'again']);
  });

  it('a session whose workflow an operator terminates is marked failed, its sandbox stopped; deleting it removes the sandbox', async () => {
    const model = berth.model('terminated');
    await berth.script(model, [{ tool_calls: [{ name: 'bash', arguments: { command: 'touch here' } }] }, { text: 'done' }]);
    const sid = await berth.newSession(model);
    await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'hi' });
    expect(await berth.sandboxRunning(sid)).toBe(true);

    // What `temporal workflow terminate` or the Web UI's Terminate button does.
    const connection = await Connection.connect({ address: berth.temporalAddress });
    await new Client({ connection }).workflow.getHandle(sid).terminate('stopped by an operator');
    await connection.close();
    const failed = await berth.api.events(sid, { until: (e) => e.type === 'session.status' && e.data.status === 'failed', timeoutMs: 20_000 });
    expect(failed.at(-1)!.data).toEqual({ status: 'failed', sandbox: 'hibernated', reason: 'its workflow is terminated' });
    expect((await berth.api.get(`/v1/sessions/${sid}`)).body).toMatchObject({ status: 'failed', sandbox_state: 'hibernated' });
    expect(await berth.sandboxRunning(sid)).toBe(false);
    expect(existsSync(berth.workspace(sid, 'here'))).toBe(true);
    expect((await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'hello?' })).status).toBe(409);

    expect((await berth.api.delete(`/v1/sessions/${sid}`)).status).toBe(200);
    await expect.poll(async () => (await berth.api.get(`/v1/sessions/${sid}`)).body, { timeout: 20_000 }).toMatchObject({ status: 'ended', sandbox_state: 'removed' });
    expect(existsSync(berth.workspace(sid))).toBe(false);
  });

  it('a session deleted after Temporal dropped its closed workflow still loses its sandbox and workspace', { timeout: 120_000 }, async () => {
    const model = berth.model('forgotten');
    await berth.script(model, [{ tool_calls: [{ name: 'bash', arguments: { command: 'touch here' } }] }, { text: 'done' }]);
    const sid = await berth.newSession(model);
    await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'hi' });

    const connection = await Connection.connect({ address: berth.temporalAddress });
    const temporal = new Client({ connection, namespace: inject('temporalNamespace') });
    await temporal.workflow.getHandle(sid).terminate('stopped by an operator');
    await berth.api.events(sid, { until: (e) => e.type === 'session.status' && e.data.status === 'failed', timeoutMs: 20_000 });
    // What the namespace's retention does to a closed workflow, as `temporal workflow delete` does. The
    // server deletes it once it has saved its task queues' progress, every 30 s by default.
    await temporal.workflowService.deleteWorkflowExecution({ namespace: inject('temporalNamespace'), workflowExecution: { workflowId: sid } });
    await expect.poll(async () => (await temporal.workflow.count(`WorkflowId = '${sid}'`)).count, { timeout: 60_000, interval: 1_000 }).toBe(0);
    await connection.close();
    expect(existsSync(berth.workspace(sid, 'here'))).toBe(true);

    expect((await berth.api.delete(`/v1/sessions/${sid}`)).status).toBe(200);
    await expect.poll(async () => (await berth.api.get(`/v1/sessions/${sid}`)).body, { timeout: 20_000 }).toMatchObject({ status: 'ended', sandbox_state: 'removed' });
    expect(existsSync(berth.workspace(sid))).toBe(false);
    const events = await berth.api.events(sid, { until: (e) => e.type === 'session.status' && e.data.status === 'ended' });
    expect(events.at(-1)!.data).toEqual({ status: 'ended', sandbox: 'removed' });
  });
});

// Crashes of the processes around a session, by SIGKILL: the worker mid-tool and mid-stream, the
// sandbox between turns and mid-tool, the worker with every sandbox, the web process mid-create; and a
// deploy's polite SIGTERM mid-tool. The session carries on; nothing is lost or duplicated.
import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { localSandboxProvider, stopAllLocalSandboxes } from '../../activities/sandbox/local.ts';
import { reportStoppedSandboxes } from '../../activities/sandbox/report-stopped.ts';
import { abandonedAfterMs } from '../../api/idempotency.ts';
import { db } from '../../lib/db.ts';
import { snapshotQuery } from '../../workflows/messages.ts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBerth, type Berth } from '../support/berth.ts';
import { tempDirForTest } from '../support/temp.ts';
import { assertOrderedOnce } from '../support/assertions.ts';
import type { SseEvent } from '../support/api-client.ts';
import { TEST_ADMIN_KEY } from '../support/processes.ts';
import { tcpProxy } from '../support/tcp-proxy.ts';

let berth: Berth;
beforeAll(async () => {
  berth = await startBerth({ name: 'crash', env: { BERTH_HEARTBEAT_TIMEOUT_S: '3', BERTH_WORKER_SHUTDOWN_GRACE_S: '2' } });
});
afterAll(async () => {
  await berth?.stop();
});

/** A session whose first turn wrote kept.txt with the bash tool; its next message, 'read', reads it back. */
async function sessionThatWroteAFile(label: string): Promise<string> {
  const model = berth.model(label);
  await berth.script(model, {
    rules: [
      { match: 'write', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'echo kept > kept.txt' } }] }, { text: 'written' }] },
      { match: 'read', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'cat kept.txt' } }] }, { text: 'read' }] },
    ],
  });
  const sid = await berth.newSession(model);
  await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'write' });
  return sid;
}

async function transcript(sid: string): Promise<any[]> {
  return (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data;
}

/** A new session whose turn runs a command of `sleepS` seconds that notes each run in runs.log; returns once it has started. */
async function sessionInLongCommand(label: string, sleepS: number): Promise<string> {
  const model = berth.model(label);
  await berth.script(model, [
    { tool_calls: [{ name: 'bash', arguments: { command: `echo started >> runs.log; sleep ${sleepS}; echo finished` } }] },
    { text: 'the command finished' },
  ]);
  const sid = await berth.newSession(model);
  await berth.sendUntilToolStarted(sid, 'run it');
  return sid;
}

/** The turn of sessionInLongCommand completes with the command's output, every event once, the command run once; returns the events. */
async function expectLongCommandRanOnce(sid: string): Promise<SseEvent[]> {
  const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 60_000 });
  expect(events.at(-1)?.type).toBe('turn.completed');
  assertOrderedOnce(events);
  expect(await readFile(berth.workspace(sid, 'runs.log'), 'utf8')).toBe('started\n');
  const t = await transcript(sid);
  expect(t.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
  expect(t[2].content).toBe('finished\n');
  return events;
}

describe('SIGKILL of the worker', () => {
  it('during a long tool call: a new worker attaches to the running command; it runs once', async () => {
    const sid = await sessionInLongCommand('kill-tool', 4);
    await new Promise((r) => setTimeout(r, 500));
    berth.killWorker();
    await berth.startWorker();

    const events = await expectLongCommandRanOnce(sid);
    expect(events.filter((e) => e.type === 'tool.started')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'tool.finished')).toHaveLength(1);
  });

  it('a deploy (SIGTERM, then a new worker) during a tool call longer than the grace time: the command runs on, once', async () => {
    const sid = await sessionInLongCommand('deploy-tool', 6);
    await berth.replaceWorker(); // the old worker's 2 s grace ends before the command does
    await expectLongCommandRanOnce(sid);
  });

  it('during a streaming model step: the step is retried, the reply is recorded once', async () => {
    const model = berth.model('kill-stream');
    const chunks = Array.from({ length: 16 }, (_, i) => `part${i} `);
    await berth.script(model, [{ text: chunks.join(''), chunks, chunk_delay_ms: 250 }]);
    const sid = await berth.newSession(model);
    const firstDelta = berth.api.events(sid, { until: (e) => e.type === 'message.delta' });
    await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'talk slowly' });
    await firstDelta;
    berth.killWorker();
    await berth.startWorker();

    const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 60_000 });
    expect(events.at(-1)?.type).toBe('turn.completed');
    assertOrderedOnce(events);
    const retries = events.filter((e) => e.type === 'step.retry');
    expect(retries[0]?.data).toMatchObject({ turn: 1, step: 1, attempt: 2 });
    // A client shows a step's newest attempt only (a timed-out attempt may still send a last delta).
    const newest = Math.max(...retries.map((e) => e.data.attempt));
    const shown = events.filter((e) => e.type === 'message.delta' && e.data.attempt === newest).map((e) => e.data.text).join('');
    expect(shown).toBe(chunks.join(''));
    const t = await transcript(sid);
    expect(t.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(t[1].content).toBe(chunks.join(''));
  });
});

describe('SIGKILL of the sandbox', () => {
  it('between turns: the next tool call recreates it with the workspace intact', async () => {
    const sid = await sessionThatWroteAFile('kill-sandbox-idle');
    await berth.killSandbox(sid);
    const res = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'read' });
    expect(res.status).toBe(200);
    const t = await transcript(sid);
    expect(t.at(-2).content).toBe('kept\n');
    const events = await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' && e.data.turn === 2 });
    expect(events.some((e) => e.type === 'session.status' && e.data.started === 'recreated')).toBe(true);
  });

  it('during a tool call: the model is told, and the next call runs in a recreated sandbox', async () => {
    const model = berth.model('kill-sandbox-busy');
    await berth.script(model, [
      { tool_calls: [{ name: 'bash', arguments: { command: 'echo before > before.txt; sleep 30' } }] },
      { tool_calls: [{ name: 'bash', arguments: { command: 'cat before.txt' } }] },
      { text: 'recovered' },
    ]);
    const sid = await berth.newSession(model);
    await berth.sendUntilToolStarted(sid, 'go');
    await new Promise((r) => setTimeout(r, 300));
    await berth.killSandbox(sid);
    const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 60_000 });
    expect(events.at(-1)?.type).toBe('turn.completed');
    const tools = (await transcript(sid)).filter((m) => m.role === 'tool');
    expect(tools[0].content).toContain('the sandbox stopped while this command ran');
    expect(tools[1].content).toBe('before\n');
  });
});

describe('the stack going down with its sandboxes', () => {
  it('the next worker has an idle session whose sandbox stopped show as hibernated at once; the next tool call wakes it', async () => {
    const sid = await sessionThatWroteAFile('stack-down');
    expect((await berth.api.get(`/v1/sessions/${sid}`)).body).toMatchObject({ status: 'active', sandbox_state: 'running' });
    // Idle, as when Ctrl-C reaches a quiet stack: the turn's last workflow task is done (a query waits for it).
    const connection = await Connection.connect({ address: berth.temporalAddress });
    const client = new Client({ connection });
    expect(await client.workflow.getHandle(sid).query(snapshotQuery)).toMatchObject({ runningTurn: null, sandbox: 'running' });
    // A worker whose data dir does not hold this session's sandbox (another file's, here) leaves it alone.
    process.env.DATABASE_URL = inject('databaseUrl');
    const elsewhere = localSandboxProvider({ dataDir: tempDirForTest('berth-elsewhere-'), limits: { memoryBytes: 2 ** 28, cpuSeconds: 60, pids: 64, fileBytes: 2 ** 20 } });
    expect(await reportStoppedSandboxes(client, elsewhere)).not.toContain(sid);
    await connection.close();

    // What `npm start` does at Ctrl-C, the worker by SIGKILL: no hook of its own stops anything.
    berth.killWorker();
    await stopAllLocalSandboxes(berth.dataDir);
    await berth.startWorker();
    // The idle timeout is 10 minutes here: the hibernation comes from the new worker's report.
    await berth.api.events(sid, { until: (e) => e.type === 'session.status' && e.data.status === 'hibernated', timeoutMs: 20_000 });
    expect((await berth.api.get(`/v1/sessions/${sid}`)).body).toMatchObject({ status: 'hibernated', sandbox_state: 'hibernated' });

    const res = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'read' });
    expect(res.body).toMatchObject({ outcome: 'completed', text: 'read' });
    expect((await transcript(sid)).at(-2).content).toBe('kept\n');
    expect((await berth.api.get(`/v1/sessions/${sid}`)).body).toMatchObject({ status: 'active', sandbox_state: 'running' });
  });
});

describe('SIGKILL of the web process', () => {
  it('while it starts a session: a retry with its Idempotency-Key gets that session, once the claim is abandoned', async () => {
    // The web process's Temporal connection goes through a proxy that then drops the answers: the
    // session's workflow starts, and the request that started it never hears so.
    const proxy = await tcpProxy(berth.temporalAddress);
    const web = await berth.startWeb({ TEMPORAL_ADDRESS: proxy.address });
    const model = berth.model('web-kill');
    await berth.script(model, [{ text: 'one session' }]);
    const agent = await berth.createAgent({ model });
    const key = `web-kill-${Date.now()}`;
    const create = (url: string) =>
      fetch(`${url}/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ agent_id: agent.id }),
      });
    proxy.drop('answers');
    const cut = create(web.url).then(
      (res) => `answered ${res.status}`,
      () => 'cut',
    );
    const sessions = async () => (await berth.api.get(`/v1/sessions?agent_id=${agent.id}`)).body.data as Array<{ id: string }>;
    await expect.poll(async () => (await sessions()).length, { timeout: 10_000 }).toBe(1);
    const id = (await sessions())[0]!.id;
    const connection = await Connection.connect({ address: berth.temporalAddress });
    const handle = new Client({ connection }).workflow.getHandle(id);
    await expect.poll(async () => (await handle.describe().catch(() => undefined))?.status.name, { timeout: 10_000 }).toBe('RUNNING');
    await connection.close();
    process.kill(-web.pid, 'SIGKILL');
    expect(await cut).toBe('cut');
    await proxy.close();

    // At once, the dead request's claim might still be running somewhere: 409, and nothing written.
    const early = await create(berth.url);
    expect(early.status).toBe(409);
    expect(((await early.json()) as { error: { code: string } }).error.code).toBe('idempotency_in_progress');

    // Once the claim is older than any write takes, a retry takes it over and finds what it made.
    process.env.DATABASE_URL = inject('databaseUrl');
    await db().idempotencyKey.update({
      where: { teamId_key: { teamId: 'team_default', key } },
      data: { claimedAt: new Date(Date.now() - abandonedAfterMs() - 1_000) },
    });
    const retried = await create(berth.url);
    expect(retried.status).toBe(201);
    expect(((await retried.json()) as { id: string }).id).toBe(id);
    expect((await sessions()).map((s) => s.id)).toEqual([id]);
    const replayed = await create(berth.url);
    expect(((await replayed.json()) as { id: string }).id).toBe(id);
    const reply = await berth.api.post(`/v1/sessions/${id}/messages?wait=true`, { content: 'hello' });
    expect(reply.body).toMatchObject({ outcome: 'completed', text: 'one session' });
  });
});

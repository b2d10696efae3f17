// A whole conversation through the real stack: API → Temporal → worker → LiteLLM → scripted model,
// tools in a real bubblewrap sandbox, events over SSE.
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftOutNote, shortenedNote } from '../../activities/model/context.ts';
import { ROOT } from '../../bin/stack/berth.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { startBerth, type Berth } from '../support/berth.ts';
import { assertOrderedOnce } from '../support/assertions.ts';
import { testEnv } from '../support/processes.ts';

let berth: Berth;
let metricsAddress: string;
beforeAll(async () => {
  metricsAddress = `127.0.0.1:${await freePort()}`;
  berth = await startBerth({ name: 'conversation', env: { BERTH_WORKER_METRICS_ADDRESS: metricsAddress } });
});
afterAll(async () => {
  await berth?.stop();
});

describe('a conversation with tool calls', () => {
  it('runs bash and write_file in the sandbox, records the transcript and streams every event once, in order', async () => {
    const model = berth.model('conv');
    await berth.script(model, [
      { tool_calls: [{ id: 'call_1', name: 'bash', arguments: { command: 'echo "hello from $(hostname)"; sleep 0.2; echo oops >&2; exit 3' } }] },
      { tool_calls: [{ id: 'call_2', name: 'write_file', arguments: { path: 'notes/today.txt', content: 'remember the milk\n' } }] },
      { text: 'All done: I wrote notes/today.txt.', chunks: ['All ', 'done: ', 'I wrote ', 'notes/today.txt.'], chunk_delay_ms: 20 },
    ]);
    const agent = await berth.createAgent({ model, system_prompt: 'You are terse.' });
    const session = await berth.api.post('/v1/sessions', { agent_id: agent.id });
    expect(session.status).toBe(201);
    const sid = session.body.id as string;

    const streamed = berth.api.events(sid, { until: (e) => e.type === 'turn.completed', timeoutMs: 60_000 });
    const sent = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'please take a note' });
    expect(sent.status).toBe(200);
    expect(sent.body).toMatchObject({ outcome: 'completed', text: 'All done: I wrote notes/today.txt.', turn: 1 });
    const events = await streamed;

    // The file is in the session's workspace on the host.
    expect(await readFile(berth.workspace(sid, 'notes/today.txt'), 'utf8')).toBe('remember the milk\n');

    // The transcript is complete and in order.
    const transcript = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(transcript.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'tool', 'assistant']);
    expect(transcript.map((m) => m.seq)).toEqual([...transcript.map((m) => m.seq)].sort((a, b) => a - b));
    expect(transcript[0].content).toBe('please take a note');
    expect(transcript[1].tool_calls[0]).toMatchObject({ id: 'call_1', name: 'bash' });
    expect(transcript[2].content).toBe('hello from sandbox\noops\n\n[exit code: 3]');
    expect(transcript[4].content).toBe('Wrote 18 bytes to notes/today.txt');
    expect(transcript[5].content).toBe('All done: I wrote notes/today.txt.');

    // Every event once, in order, with the expected shape.
    assertOrderedOnce(events);
    const types = events.map((e) => e.type);
    expect(types.filter((t) => t === 'message.created')).toHaveLength(6);
    expect(types.filter((t) => t === 'tool.started')).toHaveLength(2);
    expect(types.filter((t) => t === 'tool.finished')).toHaveLength(2);
    expect(types.filter((t) => t === 'turn.completed')).toHaveLength(1);
    const text = events.filter((e) => e.type === 'message.delta').map((e) => e.data.text).join('');
    expect(text).toBe('All done: I wrote notes/today.txt.');
    const output = events.filter((e) => e.type === 'tool.output' && e.data.call_id === 'call_1').map((e) => e.data.data).join('');
    expect(output).toContain('hello from sandbox');
    expect(types.indexOf('tool.started')).toBeLessThan(types.indexOf('tool.finished'));
    expect(events.find((e) => e.type === 'tool.finished' && e.data.call_id === 'call_1')?.data).toMatchObject({ exit_code: 3, is_error: true });

    // Resuming from the middle with Last-Event-ID gives exactly the rest.
    const middle = events[Math.floor(events.length / 2)]!;
    const rest = await berth.api.events(sid, { lastEventId: middle.id, until: (e) => e.type === 'turn.completed', timeoutMs: 10_000 });
    expect(rest.map((e) => e.id)).toEqual(events.filter((e) => e.id > middle.id).map((e) => e.id));

    // The model saw the system prompt, the five builtin tools, and the tool results.
    const requests = await berth.requests(model);
    expect(requests).toHaveLength(3);
    const first = requests[0];
    expect(first.messages[0]).toEqual({ role: 'system', content: 'You are terse.' });
    expect(first.tools.map((t: any) => t.function.name).sort()).toEqual(['bash', 'edit_file', 'list_files', 'read_file', 'write_file']);
    expect(requests[2].messages.filter((m: any) => m.role === 'tool')).toHaveLength(2);

    // Usage adds up, and the session reports a running sandbox.
    const detail = (await berth.api.get(`/v1/sessions/${sid}`)).body;
    expect(detail.status).toBe('active');
    expect(detail.sandbox_state).toBe('running');
    expect(detail.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('answers a retried message (same Idempotency-Key) once', async () => {
    const model = berth.model('idem');
    await berth.script(model, [{ text: 'pong' }]);
    const sid = await berth.newSession(model);
    const headers = { 'idempotency-key': 'the-same-key-twice' };
    const a = await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'ping' }, headers);
    const b = await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'ping' }, headers);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.message_id).toBe(a.body.message_id);
    await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' });
    const transcript = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(transcript.map((m) => m.role)).toEqual(['user', 'assistant']);
  });

  it('edits, reads and lists files, and tells the model about bad tool arguments', async () => {
    const model = berth.model('files');
    await berth.script(model, [
      { tool_calls: [{ name: 'write_file', arguments: { path: 'a.txt', content: 'one two three' } }] },
      { tool_calls: [{ name: 'edit_file', arguments: { path: 'a.txt', old_string: 'two', new_string: '2' } }] },
      { tool_calls: [{ name: 'read_file', arguments: { path: 'a.txt' } }] },
      { tool_calls: [{ name: 'list_files', arguments: {} }] },
      { tool_calls: [{ name: 'read_file', arguments: { path: '../../etc/passwd' } }] },
      { tool_calls: [{ name: 'bash', arguments: { cmd: 'ls' } }] },
      { text: 'ok' },
    ]);
    const sid = await berth.newSession(model);
    const res = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'go' });
    expect(res.status).toBe(200);
    const tools = ((await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[]).filter((m) => m.role === 'tool');
    expect(tools.map((m) => m.content)).toEqual([
      'Wrote 13 bytes to a.txt',
      'Edited a.txt',
      'one 2 three',
      'a.txt',
      expect.stringMatching(/path/i),
      expect.stringMatching(/invalid arguments for bash: .*command/),
    ]);
  });

  it('truncates large tool output in the middle with a marker', async () => {
    const model = berth.model('big');
    await berth.script(model, [{ tool_calls: [{ name: 'bash', arguments: { command: 'seq 1 200000' } }] }, { text: 'counted' }]);
    const sid = await berth.newSession(model);
    await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'count' });
    const tool = ((await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[]).find((m) => m.role === 'tool');
    expect(tool.content.startsWith('1\n2\n3\n')).toBe(true);
    expect(tool.content.endsWith('199999\n200000\n')).toBe(true);
    expect(tool.content).toMatch(/\[\.\.\. \d+ characters truncated \.\.\.\]/);
    expect(tool.content.length).toBeLessThan(33_000);
  });

  it("leaves the oldest turns out once the context no longer fits the model's window, says so, and fails a message too long alone", async () => {
    const model = berth.model('window');
    // About 1,000 characters a turn against a window of 3,500: the fourth turn's context is too long.
    await berth.script(model, { context_window_chars: 3_500, rules: [{ steps: [{ text: 'ok' }] }] });
    const sid = await berth.newSession(model);
    const message = (i: number) => `message ${i} ${'.'.repeat(1_000)}`;
    for (let i = 1; i <= 5; i++) {
      expect((await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: message(i) })).body).toMatchObject({ outcome: 'completed' });
    }
    const users = (r: any) => r.messages.filter((m: any) => m.role === 'user').map((m: any) => m.content);
    const system = (r: any) => r.messages.find((m: any) => m.role === 'system')?.content;
    const requests = await berth.requests(model);
    // Turn 4: refused whole, then asked again without the older half of turns 1-3; turn 5 starts there.
    expect(requests.map(users)).toEqual([
      [message(1)],
      [message(1), message(2)],
      [message(1), message(2), message(3)],
      [message(1), message(2), message(3), message(4)],
      [message(3), message(4)],
      [message(3), message(4), message(5)],
    ]);
    const note = leftOutNote({ turn: 3, seq: 0 }, 0);
    expect(note).toBe("[Turns 1 to 2 of this conversation are left out: they no longer fit the model's context window.]");
    expect(requests.map(system)).toEqual([undefined, undefined, undefined, undefined, note, note]);
    // The transcript keeps every turn.
    const transcript = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(transcript.filter((m) => m.role === 'user')).toHaveLength(5);

    const alone = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: `too long ${'.'.repeat(4_000)}` });
    expect(alone.body).toMatchObject({ outcome: 'failed' });
    expect(alone.body.error).toMatch(/^the model's context window cannot hold even this turn's message and latest step: model gateway answered 400: .*ContextWindowExceededError/);
  });

  it("cuts a tool result too long for the model's window to its head and tail, says so, and the turn goes on", async () => {
    const model = berth.model('small-window');
    // The output of `seq 1 3000` is 13,893 characters; the window holds 3,000.
    await berth.script(model, {
      context_window_chars: 3_000,
      rules: [{ steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'seq 1 3000' } }] }, { text: 'counted' }] }],
    });
    const sid = await berth.newSession(model);
    expect((await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'count' })).body).toMatchObject({ outcome: 'completed', text: 'counted' });

    const requests = await berth.requests(model);
    const results = requests.map((r: any) => r.messages.find((m: any) => m.role === 'tool')?.content.length);
    // Refused whole, then asked with the result cut to half of it, and half again, until it fits.
    expect(results).toEqual([undefined, 13_893, expect.any(Number), expect.any(Number), expect.any(Number)]);
    const last = requests.at(-1) as any;
    const result = last.messages.find((m: any) => m.role === 'tool').content as string;
    expect(result.startsWith('1\n2\n3\n')).toBe(true);
    expect(result.endsWith('2999\n3000\n')).toBe(true);
    expect(result).toMatch(/\[\.\.\. \d+ characters truncated \.\.\.\]/);
    expect(last.messages[0]).toEqual({ role: 'system', content: shortenedNote({ turn: 1, seq: 0, toolResultChars: 1_736 }) });
    // The transcript keeps the whole output.
    const transcript = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(transcript.find((m) => m.role === 'tool').content).toHaveLength(13_893);
  });

  it("serves the worker's Temporal metrics for Prometheus, and names the variable when it cannot", async () => {
    // The tests above ran model and tool steps on this worker: the SDK counted them.
    const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
    const count = (metric: string, label: string) =>
      Number(text.match(new RegExp(`^temporal_${metric}_seconds_count\\{[^}]*${label}[^}]*\\} (\\d+)`, 'm'))?.[1] ?? 0);
    expect(count('activity_execution_latency', 'activity_type="modelStep"')).toBeGreaterThanOrEqual(12);
    expect(count('activity_execution_latency', 'activity_type="runTool"')).toBeGreaterThanOrEqual(9);
    expect(count('workflow_task_execution_latency', 'workflow_type="sessionWorkflow"')).toBeGreaterThan(0);
    expect(text).toMatch(/^temporal_worker_task_slots_available\{[^}]*worker_type="ActivityWorker"/m);

    // A second worker cannot bind the same address: it stops at once and says which variable to change.
    const second = spawnSync(process.execPath, ['--import', 'tsx', 'bin/worker.ts'], {
      cwd: ROOT,
      env: testEnv('conversation-metrics', { BERTH_WORKER_METRICS_ADDRESS: metricsAddress }).env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`cannot serve metrics on BERTH_WORKER_METRICS_ADDRESS=${metricsAddress}`);
  });
});

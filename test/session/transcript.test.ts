// The transcript's one-statement write (activities/transcript.ts) against real Postgres: the message
// row and its events land together, in order; a repeat writes nothing; the first write wins and
// message.created describes the stored row. Deltas queued behind a pending write follow it. The
// model's context, read step after step, is the transcript in turn order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildContext, INTERRUPTED_TOOL_RESULT, leftOutNote, shortenedNote, shorterContext, WHOLE_TRANSCRIPT } from '../../activities/model/context.ts';
import { CoalescingWriter, recordMessage } from '../../activities/transcript.ts';
import { db } from '../../lib/db.ts';
import { listEvents } from '../../lib/events.ts';
import { startApi, type TestApi } from '../api/harness.ts';

let t: TestApi;
let agentId: string;
beforeAll(async () => {
  t = await startApi('transcript'); // no worker: these tests write as the activities do
  agentId = (await t.api.post('/v1/agents', { name: 'transcript', model: 'm' })).body.id;
});
afterAll(async () => {
  await t?.stop();
});

const newSession = async () => (await t.api.post('/v1/sessions', { agent_id: agentId })).body.id as string;
const events = async (sessionId: string) => (await listEvents(sessionId, 0)).map(({ seq, type, data }) => ({ seq, type, data }));

describe('recordMessage', () => {
  it('writes the row, then before, message.created and after with consecutive seqs', async () => {
    const sid = await newSession();
    const calls = [{ id: 'call_1', name: 'bash', arguments: '{"command":"ls"}' }];
    await recordMessage(
      { sessionId: sid, seq: 2, turn: 1, role: 'assistant', content: '', toolCalls: calls, usage: { promptTokens: 7, completionTokens: 3 } },
      { before: [{ key: 'd.0', type: 'message.delta', data: { turn: 1, text: 'x' } }], after: [{ key: 'end', type: 'turn.completed', data: { turn: 1 } }] },
    );
    const row = await db().message.findUniqueOrThrow({ where: { sessionId_seq: { sessionId: sid, seq: 2 } } });
    expect(row).toMatchObject({ role: 'assistant', turn: 1, toolCalls: calls, toolCallId: null, promptTokens: 7, completionTokens: 3 });
    expect(await events(sid)).toEqual([
      { seq: 1, type: 'message.delta', data: { turn: 1, text: 'x' } },
      { seq: 2, type: 'message.created', data: { message_id: row.id, seq: 2, turn: 1, role: 'assistant', content: '', tool_calls: calls } },
      { seq: 3, type: 'turn.completed', data: { turn: 1 } },
    ]);
  });

  it('names the tool call of a tool result, and says nothing of tool calls it has not', async () => {
    const sid = await newSession();
    await recordMessage({ sessionId: sid, seq: 3, turn: 1, role: 'tool', content: 'out', toolCallId: 'call_1', toolName: 'bash', id: 'msg_tool' });
    expect((await events(sid))[0]!.data).toEqual({ message_id: 'msg_tool', seq: 3, turn: 1, role: 'tool', content: 'out', tool_call_id: 'call_1', tool_name: 'bash' });
  });

  it('keeps the first write of a seq and writes no event twice', async () => {
    const sid = await newSession();
    await recordMessage({ sessionId: sid, seq: 1, turn: 1, role: 'user', content: 'first', id: 'msg_first' });
    await recordMessage({ sessionId: sid, seq: 1, turn: 1, role: 'user', content: 'second', id: 'msg_second' }, {
      after: [{ key: 'late', type: 'turn.completed', data: { turn: 1 } }],
    });
    expect(await db().message.findMany({ where: { sessionId: sid }, select: { id: true, content: true } })).toEqual([{ id: 'msg_first', content: 'first' }]);
    const written = await events(sid);
    expect(written.map((e) => e.type)).toEqual(['message.created', 'turn.completed']);
    expect(written[0]!.data).toMatchObject({ message_id: 'msg_first', content: 'first' });
  });
});

describe('CoalescingWriter', () => {
  it("adds an inserted message's tokens to its session's usage, and a repeated write's not again", async () => {
    const sid = await newSession();
    const reply = { sessionId: sid, seq: 2, turn: 1, role: 'assistant' as const, content: 'hi', usage: { promptTokens: 1_500_000_000, completionTokens: 20 } };
    await recordMessage(reply);
    await recordMessage(reply); // a retried activity
    await recordMessage({ ...reply, seq: 4, usage: { promptTokens: 1_500_000_000, completionTokens: 22 } });
    await recordMessage({ sessionId: sid, seq: 5, turn: 2, role: 'user', content: 'no tokens' });
    const usage = (await t.api.get(`/v1/sessions/${sid}`)).body.usage;
    expect(usage).toEqual({ prompt_tokens: 3_000_000_000, completion_tokens: 42 }); // past an INTEGER's range
  });

  it('writes its first event only after the write it was told to follow', async () => {
    const sid = await newSession();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const user = gate.then(() => recordMessage({ sessionId: sid, seq: 1, turn: 1, role: 'user', content: 'hi' }));
    const deltas = new CoalescingWriter(sid, 'd', (text) => ({ type: 'message.delta', data: { text } }), { intervalMs: 1, after: user });
    deltas.push('a');
    await new Promise((r) => setTimeout(r, 50));
    expect(await events(sid)).toEqual([]); // the delta waits for the user message
    release();
    deltas.push('b');
    await deltas.close();
    expect((await events(sid)).map((e) => e.type)).toEqual(['message.created', 'message.delta', 'message.delta']);
  });

  it('fails its writes when the write it follows failed', async () => {
    const sid = await newSession();
    const failed = Promise.reject(new Error('user message not recorded'));
    const deltas = new CoalescingWriter(sid, 'd', (text) => ({ type: 'message.delta', data: { text } }), { after: failed });
    deltas.push('a');
    await expect(deltas.drain()).rejects.toThrow('user message not recorded');
    expect(await events(sid)).toEqual([]);
  });
});

describe('buildContext', () => {
  const agent = { id: 'a', teamId: 't', name: 'n', model: 'm', systemPrompt: 'be brief', tools: [], env: {} };

  it('reads step after step what each step adds, in turn order, queued messages included', async () => {
    const sid = await newSession();
    const call = { id: 'call_1', name: 'bash', arguments: '{}' };
    await recordMessage({ sessionId: sid, seq: 1, turn: 1, role: 'user', content: 'one' });
    expect(await buildContext(sid, agent)).toEqual([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'one' }]);
    await recordMessage({ sessionId: sid, seq: 2, turn: 1, role: 'assistant', content: '', toolCalls: [call] });
    // Read while its tool runs (which the workflow never does), the call reads as interrupted.
    expect((await buildContext(sid, agent)).at(-1)).toEqual({ role: 'tool', tool_call_id: 'call_1', content: INTERRUPTED_TOOL_RESULT });
    // Message 3 was queued during turn 1, so its seq is lower than turn 1's last steps.
    await recordMessage({ sessionId: sid, seq: 4, turn: 1, role: 'tool', content: 'listing', toolCallId: 'call_1', toolName: 'bash' });
    await recordMessage({ sessionId: sid, seq: 5, turn: 1, role: 'assistant', content: 'done' });
    await buildContext(sid, agent);
    await recordMessage({ sessionId: sid, seq: 3, turn: 2, role: 'user', content: 'two' });
    expect(await buildContext(sid, agent)).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'bash', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'listing' },
      { role: 'assistant', content: 'done' },
      { role: 'user', content: 'two' },
    ]);
  });

  it("adds the turn's first message when its write has not landed yet", async () => {
    const sid = await newSession();
    const context = await buildContext(sid, agent, { messageId: 'msg_x', seq: 1, content: 'hello' });
    expect(context.at(-1)).toEqual({ role: 'user', content: 'hello' });
    await recordMessage({ sessionId: sid, seq: 1, turn: 1, role: 'user', content: 'hello' });
    expect((await buildContext(sid, agent, { messageId: 'msg_x', seq: 1, content: 'hello' })).filter((m) => m.role === 'user')).toHaveLength(1);
  });
});

describe('a context too long for the model', () => {
  it('is shortened by the older half of the earlier turns, then of this turn\'s steps, keeping its message and latest step', async () => {
    const sid = await newSession();
    const agent = { id: agentId, teamId: t.teamId, name: 'a', model: 'm', systemPrompt: 'Be brief.', tools: [], env: {} };
    const call = (n: number) => [{ id: `c${n}`, name: 'bash', arguments: '{}' }];
    await recordMessage({ sessionId: sid, seq: 1, turn: 1, role: 'user', content: 'first' });
    await recordMessage({ sessionId: sid, seq: 2, turn: 1, role: 'assistant', content: 'done' });
    await recordMessage({ sessionId: sid, seq: 3, turn: 2, role: 'user', content: 'second' });
    for (let n = 1; n <= 4; n++) {
      await recordMessage({ sessionId: sid, seq: 2 + 2 * n, turn: 2, role: 'assistant', content: '', toolCalls: call(n) });
      await recordMessage({ sessionId: sid, seq: 3 + 2 * n, turn: 2, role: 'tool', content: `out${n}`, toolCallId: `c${n}`, toolName: 'bash' });
    }
    const shape = async (from = WHOLE_TRANSCRIPT) =>
      (await buildContext(sid, agent as never, undefined, from)).map((m) => (m.role === 'tool' ? `tool ${m.content}` : `${m.role} ${m.content ?? ''}`.trim()));

    const turns = await shorterContext(sid, WHOLE_TRANSCRIPT, 2);
    expect(turns).toEqual({ turn: 2, seq: 0 });
    expect(await shape(turns!)).toEqual([
      `system Be brief.\n\n${leftOutNote(turns!, 0)}`, 'user second', 'assistant', 'tool out1', 'assistant', 'tool out2', 'assistant', 'tool out3', 'assistant', 'tool out4',
    ]);
    expect(leftOutNote(turns!, 0)).toBe("[Turn 1 of this conversation is left out: it no longer fits the model's context window.]");

    const steps = await shorterContext(sid, turns!, 2);
    expect(steps).toEqual({ turn: 2, seq: 8 });
    expect(await shape(steps!)).toEqual([`system Be brief.\n\n${leftOutNote(steps!, 2)}`, 'user second', 'assistant', 'tool out3', 'assistant', 'tool out4']);
    expect(leftOutNote(steps!, 2)).toBe(
      "[Turn 1 of this conversation and the first 2 steps of turn 2 (replies and their tool results) are left out: they no longer fit the model's context window.]",
    );

    const last = await shorterContext(sid, steps!, 2);
    expect(last).toEqual({ turn: 2, seq: 10 });
    expect(await shape(last!)).toEqual([`system Be brief.\n\n${leftOutNote(last!, 3)}`, 'user second', 'assistant', 'tool out4']);
    expect(await shorterContext(sid, last!, 2)).toBeNull(); // the latest step always stays, and out4 is too short to cut
  });

  it("then halves the latest step's tool results, head and tail kept, down to 500 characters", async () => {
    const sid = await newSession();
    const agent = { id: agentId, teamId: t.teamId, name: 'a', model: 'm', systemPrompt: 'Be brief.', tools: [], env: {} };
    const output = Array.from({ length: 1_000 }, (_, i) => `${i + 1}`).join('\n'); // 3,892 characters
    await recordMessage({ sessionId: sid, seq: 1, turn: 1, role: 'user', content: 'count' });
    await recordMessage({ sessionId: sid, seq: 2, turn: 1, role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'bash', arguments: '{}' }, { id: 'c2', name: 'bash', arguments: '{}' }] });
    await recordMessage({ sessionId: sid, seq: 3, turn: 1, role: 'tool', content: output, toolCallId: 'c1', toolName: 'bash' });
    await recordMessage({ sessionId: sid, seq: 4, turn: 1, role: 'tool', content: 'short', toolCallId: 'c2', toolName: 'bash' });

    const limits: number[] = [];
    for (let from = WHOLE_TRANSCRIPT, next = await shorterContext(sid, from, 1); next; from = next, next = await shorterContext(sid, from, 1)) {
      expect(next).toMatchObject({ turn: 1, seq: 0 });
      limits.push(next.toolResultChars!);
      const context = await buildContext(sid, agent as never, undefined, next);
      expect(context[0]).toEqual({ role: 'system', content: `Be brief.\n\n${shortenedNote(next)}` });
      const [long, short] = context.filter((m) => m.role === 'tool').map((m) => m.content as string);
      expect(long!.startsWith('1\n2\n3\n')).toBe(true);
      expect(long!.endsWith('\n999\n1000')).toBe(true);
      expect(long).toMatch(/\[\.\.\. \d+ characters truncated \.\.\.\]/);
      expect(long!.length).toBeLessThan(next.toolResultChars! + 40);
      expect(short).toBe('short');
    }
    expect(limits).toEqual([1_946, 973]); // then 486, under 500: null
    expect(shortenedNote({ turn: 1, seq: 0, toolResultChars: 500 })).toBe(
      "[The tool results of turn 1 are cut to 500 characters each, their middle left out: whole, they no longer fit the model's context window.]",
    );
    // The transcript keeps the whole result.
    expect((await buildContext(sid, agent as never)).find((m) => m.role === 'tool')!.content).toBe(output);
  });
});

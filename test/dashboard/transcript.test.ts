// The session view's event folding (dashboard/app/lib/transcript.ts), on event sequences shaped
// like the worker's: replays and overlapping reconnects apply each event once, a step.retry drops
// the earlier attempt's partial text, the stored transcript and the stream never show text twice.
import { describe, expect, it } from 'vitest';
import { applyEvent, buildTimeline, emptyState, runningTurn, type SseEvent } from '../../dashboard/app/lib/transcript.ts';
import type { Message } from '../../dashboard/app/lib/types.ts';

let nextId = 0;
const ev = (type: string, data: Record<string, unknown>): SseEvent => ({ id: ++nextId, type, data });
const msg = (seq: number, turn: number, role: Message['role'], content: string, extra: Partial<Message> = {}): Message => ({
  id: `msg_${seq}`, seq, turn, role, content, tool_calls: null, tool_call_id: null, tool_name: null, ...extra,
});
const created = (m: Message) =>
  ev('message.created', { message_id: m.id, seq: m.seq, turn: m.turn, role: m.role, content: m.content, tool_calls: m.tool_calls ?? undefined, tool_call_id: m.tool_call_id ?? undefined, tool_name: m.tool_name ?? undefined });
const delta = (turn: number, step: number, text: string, attempt = 1) => ev('message.delta', { turn, step, attempt, text });

/** A turn: the user asks, the model runs bash (step 1), then streams its answer (step 2). */
function conversation() {
  nextId = 0;
  const user = msg(1, 1, 'user', 'count');
  const call = msg(2, 1, 'assistant', '', { tool_calls: [{ id: 'c1', name: 'bash', arguments: '{"command":"seq 3"}' }] });
  const tool = msg(3, 1, 'tool', '1\n2\n3\n', { tool_call_id: 'c1', tool_name: 'bash' });
  const answer = msg(4, 1, 'assistant', 'Counted to three.');
  const events = [
    created(user),
    created(call),
    ev('tool.started', { turn: 1, step: 1, call_id: 'c1', name: 'bash', arguments: '{"command":"seq 3"}' }),
    ev('tool.output', { turn: 1, call_id: 'c1', data: '1\n2\n' }),
    ev('tool.output', { turn: 1, call_id: 'c1', data: '3\n' }),
    created(tool),
    ev('tool.finished', { turn: 1, call_id: 'c1', name: 'bash', exit_code: 0, is_error: false }),
    delta(1, 2, 'Counted '),
    delta(1, 2, 'to three.'),
    created(answer),
    ev('turn.completed', { turn: 1, text: answer.content }),
  ];
  return { messages: [user, call, tool, answer], events };
}

const texts = (blocks: ReturnType<typeof buildTimeline>) =>
  blocks.map((b) => (b.kind === 'assistant' ? `A:${b.text}` : b.kind === 'user' ? `U:${b.message.content}` : b.kind === 'tool' ? `T:${b.output}` : `E:${b.end.outcome}`));

describe('the session view transcript', () => {
  it('applies every event once, whether replayed from the start or resumed with an overlap', () => {
    const { events } = conversation();
    const once = emptyState();
    events.forEach((e) => applyEvent(once, e));
    const expected = texts(buildTimeline([], once));
    expect(expected).toEqual(['U:count', 'T:1\n2\n3\n', 'A:Counted to three.']);

    // A connection lost after event 8, resumed from event 5 (an overlap), and one replayed twice.
    const resumed = emptyState();
    events.slice(0, 8).forEach((e) => applyEvent(resumed, e));
    const applied = events.slice(4).map((e) => applyEvent(resumed, e));
    expect(applied.slice(0, 4)).toEqual([false, false, false, false]);
    expect(applyEvent(resumed, events[9]!)).toBe(false);
    expect(texts(buildTimeline([], resumed))).toEqual(expected);
  });

  it('shows the stored transcript once when the stream replays what the page already has', () => {
    const { messages, events } = conversation();
    const live = emptyState();
    // Mid-replay (the answer's deltas are in, its message.created is not): nothing twice.
    events.slice(0, 9).forEach((e) => applyEvent(live, e));
    expect(texts(buildTimeline(messages, live))).toEqual(['U:count', 'T:1\n2\n3\n', 'A:Counted to three.']);
    events.slice(9).forEach((e) => applyEvent(live, e));
    expect(texts(buildTimeline(messages, live))).toEqual(['U:count', 'T:1\n2\n3\n', 'A:Counted to three.']);
  });

  it('streams text and tool output live, and drops a retried step\'s partial text', () => {
    const { events } = conversation();
    const live = emptyState();
    events.slice(0, 4).forEach((e) => applyEvent(live, e));
    const running = buildTimeline([], live).find((b) => b.kind === 'tool');
    expect(running).toMatchObject({ state: 'running', output: '1\n2\n' });
    expect(runningTurn([], live)).toBe(1);

    events.slice(4, 8).forEach((e) => applyEvent(live, e));
    applyEvent(live, delta(1, 2, 'to thr'));
    expect(texts(buildTimeline([], live)).at(-1)).toBe('A:Counted to thr');
    // The worker died; the retried step starts its text again.
    applyEvent(live, ev('step.retry', { turn: 1, step: 2, attempt: 2 }));
    expect(buildTimeline([], live).filter((b) => b.kind === 'assistant')).toEqual([]);
    applyEvent(live, delta(1, 2, 'Counted to three.', 2));
    applyEvent(live, delta(1, 2, 'ee.', 1)); // a late piece of the first attempt
    const blocks = buildTimeline([], live);
    expect(texts(blocks).at(-1)).toBe('A:Counted to three.');
    expect(blocks.at(-1)).toMatchObject({ streaming: true });
  });

  it('marks a tool call of an aborted turn as stopped and the turn as aborted', () => {
    nextId = 0;
    const live = emptyState();
    const call = msg(2, 1, 'assistant', '', { tool_calls: [{ id: 'c9', name: 'bash', arguments: '{"command":"sleep 100"}' }] });
    [created(msg(1, 1, 'user', 'wait')), created(call), ev('tool.started', { turn: 1, step: 1, call_id: 'c9', name: 'bash', arguments: '{}' })].forEach((e) => applyEvent(live, e));
    expect(buildTimeline([], live).find((b) => b.kind === 'tool')).toMatchObject({ state: 'running' });
    applyEvent(live, ev('turn.aborted', { turn: 1, reason: 'aborted by the user' }));
    const blocks = buildTimeline([], live);
    expect(blocks.find((b) => b.kind === 'tool')).toMatchObject({ state: 'stopped' });
    expect(blocks.at(-1)).toMatchObject({ kind: 'turn-end', end: { outcome: 'aborted', detail: 'aborted by the user' } });
    expect(runningTurn([], live)).toBeUndefined();
  });
});

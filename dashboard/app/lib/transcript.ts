// The session view's live state, folded from the SSE event log. Events are applied once each, in id
// order (a replayed or duplicated id is ignored), so a reconnect that resumes with Last-Event-ID or
// replays from the start shows every piece of text exactly once. The transcript from the loader and
// message.created events are keyed by seq; streamed text is keyed by (turn, step) and hidden once
// the step's assistant message exists; a step.retry drops the partial text of earlier attempts.
import type { Message, ToolCall } from './types.ts';

export interface LiveTool {
  name: string;
  arguments: string;
  output: string;
  finished: boolean;
  exitCode: number | null;
  isError: boolean;
}

export interface TurnEnd {
  outcome: 'completed' | 'failed' | 'aborted';
  detail: string | null;
}

export interface LiveState {
  lastEventId: number;
  messages: Map<number, Message>;
  /** `${turn}.${step}` → the attempt whose text is shown, and that text. */
  streams: Map<string, { turn: number; step: number; attempt: number; text: string }>;
  tools: Map<string, LiveTool>;
  turnEnds: Map<number, TurnEnd>;
  status: { status: string; sandbox: string } | null;
}

export interface SseEvent {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

export const emptyState = (): LiveState => ({
  lastEventId: 0,
  messages: new Map(),
  streams: new Map(),
  tools: new Map(),
  turnEnds: new Map(),
  status: null,
});

const num = (v: unknown) => (typeof v === 'number' ? v : 0);
const str = (v: unknown) => (typeof v === 'string' ? v : '');

/** Applies one event in place; false when it was already applied (its id is not newer). */
export function applyEvent(s: LiveState, e: SseEvent): boolean {
  if (e.id <= s.lastEventId) return false;
  s.lastEventId = e.id;
  const d = e.data;
  switch (e.type) {
    case 'message.created': {
      const seq = num(d.seq);
      s.messages.set(seq, {
        id: str(d.message_id),
        seq,
        turn: num(d.turn),
        role: d.role as Message['role'],
        content: str(d.content),
        tool_calls: (d.tool_calls as ToolCall[] | undefined) ?? null,
        tool_call_id: (d.tool_call_id as string | undefined) ?? null,
        tool_name: (d.tool_name as string | undefined) ?? null,
      });
      break;
    }
    case 'step.retry':
    case 'message.delta': {
      const turn = num(d.turn);
      const step = num(d.step);
      const attempt = num(d.attempt) || 1;
      const key = `${turn}.${step}`;
      const cur = s.streams.get(key);
      if (cur && attempt < cur.attempt) break; // a late piece of an attempt that was retried
      const text = cur && cur.attempt === attempt ? cur.text : '';
      s.streams.set(key, { turn, step, attempt, text: e.type === 'message.delta' ? text + str(d.text) : text });
      break;
    }
    case 'tool.started':
      s.tools.set(str(d.call_id), { name: str(d.name), arguments: str(d.arguments), output: '', finished: false, exitCode: null, isError: false });
      break;
    case 'tool.output': {
      const tool = s.tools.get(str(d.call_id));
      if (tool) tool.output += str(d.data);
      break;
    }
    case 'tool.finished': {
      const tool = s.tools.get(str(d.call_id));
      if (tool) Object.assign(tool, { finished: true, exitCode: typeof d.exit_code === 'number' ? d.exit_code : null, isError: d.is_error === true });
      break;
    }
    case 'turn.completed':
    case 'turn.failed':
    case 'turn.aborted': {
      const outcome = e.type.slice('turn.'.length) as TurnEnd['outcome'];
      const why = d.error ?? d.reason;
      s.turnEnds.set(num(d.turn), { outcome, detail: why === undefined || why === null ? null : typeof why === 'string' ? why : JSON.stringify(why) });
      break;
    }
    case 'session.status':
      s.status = { status: str(d.status), sandbox: str(d.sandbox) };
      break;
  }
  return true;
}

export type Block =
  | { kind: 'user'; key: string; message: Message }
  | { kind: 'assistant'; key: string; text: string; streaming: boolean }
  | { kind: 'tool'; key: string; callId: string; name: string; arguments: string; output: string; state: 'running' | 'done' | 'error' | 'stopped'; exitCode: number | null }
  | { kind: 'turn-end'; key: string; turn: number; end: TurnEnd };

/** The transcript to render: stored messages, then what is still streaming, turn by turn. */
export function buildTimeline(stored: Message[], live: LiveState): Block[] {
  const bySeq = new Map<number, Message>();
  for (const m of stored) bySeq.set(m.seq, m);
  for (const [seq, m] of live.messages) bySeq.set(seq, m);
  const messages = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  const toolResults = new Map(messages.filter((m) => m.role === 'tool' && m.tool_call_id).map((m) => [m.tool_call_id!, m]));
  const consumed = new Set<string>();
  const turns = [...new Set([...messages.map((m) => m.turn), ...[...live.streams.values()].map((p) => p.turn)])].sort((a, b) => a - b);

  const blocks: Block[] = [];
  for (const turn of turns) {
    const inTurn = messages.filter((m) => m.turn === turn);
    let assistantSteps = 0;
    for (const m of inTurn) {
      if (m.role === 'user') blocks.push({ kind: 'user', key: `m${m.seq}`, message: m });
      if (m.role === 'assistant') {
        assistantSteps++;
        if (m.content) blocks.push({ kind: 'assistant', key: `m${m.seq}`, text: m.content, streaming: false });
        for (const call of m.tool_calls ?? []) {
          const result = toolResults.get(call.id);
          if (result) consumed.add(call.id);
          blocks.push(toolBlock(call.id, call.name, call.arguments, result, live.tools.get(call.id), live.turnEnds.has(turn)));
        }
      }
      if (m.role === 'tool' && m.tool_call_id && !consumed.has(m.tool_call_id)) {
        blocks.push(toolBlock(m.tool_call_id, m.tool_name ?? 'tool', '', m, undefined, true));
      }
    }
    const streaming = [...live.streams.values()].filter((p) => p.turn === turn && p.step > assistantSteps && p.text).sort((a, b) => a.step - b.step);
    for (const p of streaming) blocks.push({ kind: 'assistant', key: `s${turn}.${p.step}`, text: p.text, streaming: !live.turnEnds.has(turn) });
    const end = live.turnEnds.get(turn);
    if (end && end.outcome !== 'completed') blocks.push({ kind: 'turn-end', key: `e${turn}`, turn, end });
  }
  return blocks;
}

/** A call's block: its recorded result, else its live output; a call without a result in a turn that ended was stopped (aborted). */
function toolBlock(callId: string, name: string, args: string, result: Message | undefined, live: LiveTool | undefined, turnEnded: boolean): Block {
  const base = { kind: 'tool' as const, key: `t${callId}`, callId, name, arguments: args || live?.arguments || '', exitCode: live?.exitCode ?? null };
  if (result) return { ...base, output: result.content, state: live?.isError ? 'error' : 'done' };
  const state = live?.finished ? (live.isError ? 'error' : 'done') : turnEnded ? 'stopped' : 'running';
  return { ...base, output: live?.output ?? '', state };
}

/**
 * The turn still running, if any: only the newest turn can be (one turn at a time), and not once it
 * has an end event or its last message is a final answer (so a page rendered before the event
 * replay does not show finished turns as running).
 */
export function runningTurn(stored: Message[], live: LiveState): number | undefined {
  const all = [...stored, ...live.messages.values()];
  const turn = Math.max(0, ...all.filter((m) => m.role === 'user').map((m) => m.turn));
  if (turn === 0 || live.turnEnds.has(turn)) return undefined;
  const last = all.filter((m) => m.turn === turn).sort((a, b) => b.seq - a.seq)[0];
  const answered = last?.role === 'assistant' && !last.tool_calls?.length;
  return answered ? undefined : turn;
}

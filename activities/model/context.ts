// Builds the model's context from the transcript in Postgres, reading only what is new since the
// session's last step on this worker.
import { db } from '../../lib/db.ts';
import type { AgentSpec, ContextStart, QueuedMessage, ToolCall } from '../../lib/types.ts';
import { truncate } from '../tools/output.ts';
import type { ChatMessage } from './gateway.ts';

/** What the model is told for a tool call that never got a result (its turn was aborted or failed). */
export const INTERRUPTED_TOOL_RESULT = '[no result: the turn was interrupted before this tool call finished]';

export const WHOLE_TRANSCRIPT: ContextStart = { turn: 1, seq: 0 };

/** What the model is told about what was left out ('' for nothing). */
export function leftOutNote(from: ContextStart, stepsLeftOut: number): string {
  const parts: string[] = [];
  if (from.turn === 2) parts.push('turn 1 of this conversation');
  if (from.turn > 2) parts.push(`turns 1 to ${from.turn - 1} of this conversation`);
  if (stepsLeftOut === 1) parts.push(`the first step of turn ${from.turn} (a reply and its tool results)`);
  if (stepsLeftOut > 1) parts.push(`the first ${stepsLeftOut} steps of turn ${from.turn} (replies and their tool results)`);
  if (parts.length === 0) return '';
  const one = parts.length === 1 && (from.turn === 2 || stepsLeftOut === 1);
  const what = parts.join(' and ');
  return `[${what.charAt(0).toUpperCase()}${what.slice(1)} ${one ? 'is' : 'are'} left out: ${one ? 'it no longer fits' : 'they no longer fit'} the model's context window.]`;
}

/** What the model is told about tool results cut shorter than they were recorded ('' for none). */
export function shortenedNote(from: ContextStart): string {
  if (from.toolResultChars === undefined) return '';
  return `[The tool results of turn ${from.turn} are cut to ${from.toolResultChars} characters each, their middle left out: whole, they no longer fit the model's context window.]`;
}

/** A tool result is cut no shorter than this: with less left, the turn fails instead. */
const SHORTEST_TOOL_RESULT = 500;

/** How much transcript text the worker keeps for its sessions' next steps (least recently used goes first). */
const CACHED_TRANSCRIPT_BYTES = 64 * 1024 * 1024;

/**
 * Messages in turn order (a message queued during an earlier turn has a lower seq than that turn's
 * later steps, so seq alone is not conversation order). Every assistant tool call is followed by a
 * result, as the OpenAI format requires, even when its turn was cut short: the model is never
 * called while a tool runs, so an unanswered call in the transcript was interrupted. What comes
 * before `from` is left out (a step with its tool results), the tool results of its turn are cut to
 * `from.toolResultChars` when set, and the system message says so.
 */
export async function buildContext(sessionId: string, agent: AgentSpec, turnStart?: QueuedMessage, from = WHOLE_TRANSCRIPT): Promise<ChatMessage[]> {
  const all = await transcript.read(sessionId);
  // Usually everything fits: then the rows are taken as they are, with no pass over them to cut.
  const { rows, stepsLeftOut } = from === WHOLE_TRANSCRIPT ? { rows: all, stepsLeftOut: 0 } : cut(all, from);
  // The message that starts this turn may be being recorded as this reads; it comes last.
  const missing = turnStart && !rows.some((r) => r.seq === turnStart.seq);
  const system = [agent.systemPrompt, leftOutNote(from, stepsLeftOut), shortenedNote(from)].filter(Boolean).join('\n\n');
  const { toolResultChars } = from;
  const out: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  const answered = new Set(rows.filter((r) => r.role === 'tool').map((r) => r.toolCallId));
  for (const r of rows) {
    if (r.role === 'user') out.push({ role: 'user', content: r.content });
    else if (r.role === 'tool') {
      const cutShort = toolResultChars !== undefined && r.turn === from.turn;
      out.push({ role: 'tool', tool_call_id: r.toolCallId ?? '', content: cutShort ? truncate(r.content, toolResultChars) : r.content });
    } else {
      const calls = (r.toolCalls as ToolCall[] | null) ?? [];
      out.push({
        role: 'assistant',
        content: r.content || null,
        ...(calls.length
          ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })) }
          : {}),
      });
      for (const c of calls) {
        if (!answered.has(c.id)) out.push({ role: 'tool', tool_call_id: c.id, content: INTERRUPTED_TOOL_RESULT });
      }
    }
  }
  if (missing) out.push({ role: 'user', content: turnStart.content });
  return out;
}

/** The rows from `from` on (and its turn's user message), and how many of that turn's steps went. */
function cut(all: Row[], from: ContextStart): { rows: Row[]; stepsLeftOut: number } {
  const kept = (r: Row) => r.turn > from.turn || (r.turn === from.turn && (r.seq >= from.seq || r.role === 'user'));
  const stepsLeftOut = all.filter((r) => r.turn === from.turn && r.role === 'assistant' && !kept(r)).length;
  return { rows: all.filter(kept), stepsLeftOut };
}

/**
 * A shorter start for a context that did not fit, or null when nothing more can go: first the older
 * half of the earlier turns, then, within the turn being answered, the older half of its steps, then
 * half of the longest of its tool results left (a small model's window can hold less than one).
 */
export async function shorterContext(sessionId: string, from: ContextStart, turn: number): Promise<ContextStart | null> {
  if (from.turn < turn) return { turn: from.turn + Math.ceil((turn - from.turn) / 2), seq: 0 };
  const kept = (await transcript.read(sessionId)).filter((r) => r.turn === turn && r.seq >= from.seq);
  const steps = kept.filter((r) => r.role === 'assistant');
  // The newest step (its tool results are what the model is asked about) always stays.
  if (steps.length > 1) return { ...from, seq: steps[Math.floor(steps.length / 2)]!.seq };
  const longest = Math.max(0, ...kept.filter((r) => r.role === 'tool').map((r) => Math.min(r.content.length, from.toolResultChars ?? Infinity)));
  const chars = Math.floor(longest / 2);
  return chars >= SHORTEST_TOOL_RESULT ? { ...from, toolResultChars: chars } : null;
}

const ROW = { turn: true, seq: true, role: true, content: true, toolCalls: true, toolCallId: true } as const;
type Row = { turn: number; seq: number; role: string; content: string; toolCalls: unknown; toolCallId: string | null };

/**
 * The transcript rows each session's steps read, kept between steps. Rows are only ever added, in
 * (turn, seq) order, and never changed (the first write of a seq wins): a session's turns run one
 * after another, its steps too, and a turn's user message is written before its first reply. So a
 * step asks only for the rows after the last one it knows, and a long session's step costs the
 * same as a short one's. Another worker's writes are rows after that one too.
 */
class TranscriptCache {
  private readonly sessions = new Map<string, { rows: Row[]; bytes: number }>();
  private bytes = 0;

  constructor(private readonly limit: number) {}

  async read(sessionId: string): Promise<Row[]> {
    const known = this.sessions.get(sessionId);
    const last = known?.rows.at(-1);
    const after = last ? { OR: [{ turn: { gt: last.turn } }, { turn: last.turn, seq: { gt: last.seq } }] } : {};
    const fresh: Row[] = await db().message.findMany({ where: { sessionId, ...after }, orderBy: [{ turn: 'asc' }, { seq: 'asc' }], select: ROW });
    const rows = known ? known.rows.concat(fresh) : fresh;
    this.keep(sessionId, rows, (known?.bytes ?? 0) + fresh.reduce((n, r) => n + size(r), 0));
    return rows;
  }

  private keep(sessionId: string, rows: Row[], bytes: number): void {
    this.drop(sessionId);
    if (bytes > this.limit) return;
    this.sessions.set(sessionId, { rows, bytes }); // a Map keeps insertion order: the first key is the least recently used
    this.bytes += bytes;
    for (const oldest of this.sessions.keys()) {
      if (this.bytes <= this.limit) break;
      this.drop(oldest);
    }
  }

  private drop(sessionId: string): void {
    this.bytes -= this.sessions.get(sessionId)?.bytes ?? 0;
    this.sessions.delete(sessionId);
  }
}

/** About what a row holds in memory: its text, and a little for its other fields. */
const size = (r: Row) => r.content.length + (r.toolCalls ? JSON.stringify(r.toolCalls).length : 0) + 64;

const transcript = new TranscriptCache(CACHED_TRANSCRIPT_BYTES);

// Builds the model's context from the transcript in Postgres, reading only what is new since the
// session's last step on this worker.
import { db } from '../../lib/db.ts';
import type { AgentSpec, QueuedMessage, ToolCall } from '../../lib/types.ts';
import type { ChatMessage } from './gateway.ts';

/** What the model is told for a tool call that never got a result (its turn was aborted or failed). */
export const INTERRUPTED_TOOL_RESULT = '[no result: the turn was interrupted before this tool call finished]';

/** What the model is told when the context starts at a later turn than the first. */
export const leftOutNote = (fromTurn: number) =>
  `[Turns 1 to ${fromTurn - 1} of this conversation are left out: they no longer fit the model's context window.]`;

/** How much transcript text the worker keeps for its sessions' next steps (least recently used goes first). */
const CACHED_TRANSCRIPT_BYTES = 64 * 1024 * 1024;

/**
 * Messages in turn order (a message queued during an earlier turn has a lower seq than that turn's
 * later steps, so seq alone is not conversation order). Every assistant tool call is followed by a
 * result, as the OpenAI format requires, even when its turn was cut short: the model is never
 * called while a tool runs, so an unanswered call in the transcript was interrupted. Turns before
 * `fromTurn` are left out, whole, and the system message says so.
 */
export async function buildContext(sessionId: string, agent: AgentSpec, turnStart?: QueuedMessage, fromTurn = 1): Promise<ChatMessage[]> {
  const rows = (await transcript.read(sessionId)).filter((r) => r.turn >= fromTurn);
  // The message that starts this turn may be being recorded as this reads; it comes last.
  const missing = turnStart && !rows.some((r) => r.seq === turnStart.seq);
  const system = [agent.systemPrompt, fromTurn > 1 ? leftOutNote(fromTurn) : ''].filter(Boolean).join('\n\n');
  const out: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  const answered = new Set(rows.filter((r) => r.role === 'tool').map((r) => r.toolCallId));
  for (const r of rows) {
    if (r.role === 'user') out.push({ role: 'user', content: r.content });
    else if (r.role === 'tool') out.push({ role: 'tool', tool_call_id: r.toolCallId ?? '', content: r.content });
    else {
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

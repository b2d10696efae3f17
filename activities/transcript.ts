// Writes to the transcript and the event log. Every write is keyed so that a retried activity
// (after a crash, a timeout, a lost connection) writes nothing twice.
import { Context } from '@temporalio/activity';
import { db } from '../lib/db.ts';
import { appendEvents, appendEventsSql } from '../lib/events.ts';
import { newId } from '../lib/ids.ts';
import type { NewSessionEvent, ToolCall, Usage } from '../lib/types.ts';

export interface TranscriptMessage {
  sessionId: string;
  seq: number;
  turn: number;
  role: 'user' | 'assistant' | 'tool';
  content: string;
  id?: string;
  toolCalls?: ToolCall[];
  toolCallId?: string;
  toolName?: string;
  usage?: Usage;
}

/**
 * The message an earlier attempt of this activity already recorded under `seq`, if any. A first
 * attempt cannot have one: the workflow hands out each seq to one activity only.
 */
export async function findEarlierResult(sessionId: string, seq: number) {
  if (Context.current().info.attempt === 1) return null;
  return db().message.findUnique({ where: { sessionId_seq: { sessionId, seq } } });
}

/**
 * Inserts the message unless its seq is already taken (first write wins), and emits `before`,
 * message.created (of the stored row: a retry that lost to an earlier write announces that one) and
 * `after`, all in one statement: one round trip, on the path of every reply and tool result. (Two
 * attempts writing the same seq at once: the later one's snapshot misses the row it waited for, its
 * message.created has no data and the statement fails; the retry finds the row.)
 */
export async function recordMessage(
  m: TranscriptMessage,
  events: { before?: NewSessionEvent[]; after?: NewSessionEvent[] } = {},
): Promise<void> {
  const toolCalls = m.toolCalls?.length ? JSON.stringify(m.toolCalls) : null;
  await db().$queryRaw`
    WITH ins AS (
      INSERT INTO messages (id, session_id, seq, turn, role, content, tool_calls, tool_call_id, tool_name, prompt_tokens, completion_tokens)
      VALUES (${m.id ?? newId('msg')}, ${m.sessionId}, ${m.seq}, ${m.turn}, ${m.role}, ${m.content}, ${toolCalls}::jsonb,
              ${m.toolCallId ?? null}, ${m.toolName ?? null}, ${m.usage?.promptTokens ?? 0}, ${m.usage?.completionTokens ?? 0})
      ON CONFLICT DO NOTHING
      RETURNING id, seq, turn, role, content, tool_calls, tool_call_id, tool_name
    ),
    stored AS (
      SELECT * FROM ins
      UNION ALL
      SELECT id, seq, turn, role, content, tool_calls, tool_call_id, tool_name FROM messages WHERE session_id = ${m.sessionId} AND seq = ${m.seq}
    ),
    derived AS (
      SELECT jsonb_build_object('message_id', id, 'seq', seq, 'turn', turn, 'role', role, 'content', content)
        || CASE WHEN tool_calls IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('tool_calls', tool_calls) END
        || CASE WHEN tool_call_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('tool_call_id', tool_call_id, 'tool_name', tool_name) END AS d
      FROM stored
    ),
    ${appendEventsSql(m.sessionId, [...(events.before ?? []), { key: `msg.${m.seq}`, type: 'message.created', data: null }, ...(events.after ?? [])])}`;
}

/**
 * A write started now and awaited later (by the caller, or by a CoalescingWriter that follows it):
 * a failure before that await must not count as an unhandled rejection, which would end the worker.
 */
export function meanwhile<T>(write: Promise<T>): Promise<T> {
  write.catch(() => undefined);
  return write;
}

/** A key that is the same for every attempt of the current activity and differs between activities. */
export function activityKey(): string {
  const info = Context.current().info;
  return `act.${info.workflowExecution?.runId}.${info.activityId}`;
}

/**
 * Coalesces a stream of small pieces into events written at most every `intervalMs`, in order.
 * Keys are numbered, so a retried attempt (which has its own prefix) never collides with this one.
 */
export class CoalescingWriter {
  private pending = '';
  private n = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown>;
  private readonly intervalMs: number;

  /** `after`: a write the first event must follow (its failure fails every write after it). */
  constructor(
    private readonly sessionId: string,
    private readonly keyPrefix: string,
    private readonly toEvent: (text: string) => { type: 'message.delta' | 'tool.output'; data: Record<string, unknown> },
    opts: { intervalMs?: number; after?: Promise<unknown> } = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 50;
    this.chain = opts.after ?? Promise.resolve();
  }

  push(text: string): void {
    this.pending += text;
    this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  private flush(): void {
    const event = this.take();
    if (event) this.chain = this.chain.then(() => appendEvents(this.sessionId, [event]));
  }

  private take(): NewSessionEvent | undefined {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending) return undefined;
    const event = { key: `${this.keyPrefix}.${this.n++}`, ...this.toEvent(this.pending) };
    this.pending = '';
    return event;
  }

  /** Writes what is left and waits for every write. */
  async close(): Promise<void> {
    this.flush();
    await this.chain;
  }

  /** Waits for the writes so far and hands back what is left, for the caller to write with its own events. */
  async drain(): Promise<NewSessionEvent[]> {
    const event = this.take();
    await this.chain;
    return event ? [event] : [];
  }
}

/** Heartbeats every second while `fn` runs, so a slow model or a quiet command is not taken for a dead worker. */
export async function withHeartbeat<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(), 1000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

// The per-session event log: what SSE clients read. Activities append (idempotently, by key);
// a trigger NOTIFYs every insert with the event itself; each web process holds one LISTEN
// connection and fans out.
import pg from 'pg';
import { db, Prisma } from './db.ts';
import { loadConfig } from './config.ts';
import type { Logger } from './log.ts';
import type { NewSessionEvent, SessionEvent, SessionEventType } from './types.ts';

/**
 * The key of the single end event of a turn (completed, failed or aborted): a turn ends once. The
 * worker writes it under this key; the API looks a turn's end up by it.
 */
export const turnEndKey = (turn: number) => `turn.${turn}.end`;

/**
 * Appends events in order, each with the session's next seq. An event whose key was already written
 * (a retried activity) is skipped and takes no seq. Returns the seqs of the events written.
 */
export async function appendEvents(sessionId: string, events: NewSessionEvent[]): Promise<number[]> {
  if (events.length === 0) return [];
  const rows = await db().$queryRaw<{ seq: bigint }[]>`WITH ${appendEventsSql(sessionId, events)}`;
  return rows.map((r) => Number(r.seq));
}

/**
 * The tail of one statement that appends events: its CTEs and the INSERT, for `WITH <caller's CTEs,>
 * <this>`. It locks the session row, drops keys already present and numbers the rest. An event whose
 * data is null takes its data from the caller's CTE `derived` (one row, one jsonb column `d`).
 */
export function appendEventsSql(sessionId: string, events: (NewSessionEvent | DerivedEvent)[]): Prisma.Sql {
  const keys = events.map((e) => e.key);
  const types = events.map((e) => e.type);
  const data = events.map((e) => (e.data === null ? null : JSON.stringify(e.data)));
  const d = data.includes(null) ? Prisma.sql`COALESCE(u.d::jsonb, (SELECT d FROM derived))` : Prisma.sql`u.d::jsonb`;
  return Prisma.sql`
    input AS (
      SELECT k, t, ${d} AS d, ord
      FROM unnest(${keys}::text[], ${types}::text[], ${data}::text[]) WITH ORDINALITY AS u(k, t, d, ord)
      WHERE NOT EXISTS (SELECT 1 FROM session_events e WHERE e.session_id = ${sessionId} AND e.key = u.k)
    ),
    bump AS (
      UPDATE sessions SET last_event_seq = last_event_seq + (SELECT count(*) FROM input)
      WHERE id = ${sessionId}
      RETURNING last_event_seq - (SELECT count(*) FROM input) AS base
    )
    INSERT INTO session_events (session_id, seq, key, type, data)
    SELECT ${sessionId}, bump.base + row_number() OVER (ORDER BY input.ord), input.k, input.t, input.d
    FROM input, bump
    ON CONFLICT DO NOTHING
    RETURNING seq`;
}

/** An event whose data the statement derives from the caller's CTE `derived` (see appendEventsSql). */
export type DerivedEvent = Omit<NewSessionEvent, 'data'> & { data: null };

export async function listEvents(sessionId: string, afterSeq: number, limit = 500): Promise<SessionEvent[]> {
  const rows = await db().sessionEvent.findMany({
    where: { sessionId, seq: { gt: BigInt(afterSeq) } },
    orderBy: { seq: 'asc' },
    take: limit,
  });
  return rows.map((r) => ({ seq: Number(r.seq), type: r.type as SessionEventType, data: r.data as Record<string, unknown> }));
}

/**
 * The channel the trigger announces each new event on (migration 20261202200000_events_in_notify).
 * The payload is the event; one too large for a notification (8000 bytes) comes without type and data.
 */
const CHANNEL = 'session_events_v2';
type Notice = { session_id: string; seq: number; type?: SessionEventType; data?: Record<string, unknown> };

/** Called with the seq of a new event, and the event when the notification carried it; -1: anything may be new. */
type Listener = (seq: number, event?: SessionEvent) => void;

/** How long the bus waits before each attempt to connect again after losing its connection. */
const RECONNECT_MS = 1_000;

/**
 * One LISTEN connection per process; subscribers are handed their session's new events. When the
 * connection is lost (Postgres restarted, say) it connects again, once a second until it can, then
 * wakes every subscriber to read what it missed from the table.
 */
export class EventBus {
  private client: pg.Client | undefined;
  private readonly listeners = new Map<string, Set<Listener>>();
  private connecting: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly log?: Logger) {}

  async start(): Promise<void> {
    this.stopped = false;
    this.connecting ??= this.connect().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: loadConfig().DATABASE_URL });
    client.on('notification', (n) => {
      if (this.listeners.size === 0) return; // every event of every session comes here: parse only for a stream
      let notice: Notice;
      try {
        notice = JSON.parse(n.payload ?? '') as Notice;
      } catch {
        return this.wakeAll(); // not the trigger's (someone ran NOTIFY by hand): the streams read instead
      }
      const { session_id, seq, type, data } = notice;
      const event = type && data ? { seq, type, data } : undefined;
      for (const l of this.listeners.get(session_id) ?? []) l(seq, event);
    });
    // pg reports a lost connection as 'error' then 'end'; either starts one reconnect.
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.stopped) await client.end().catch(() => undefined);
    else this.client = client;
  }

  private lost(client: pg.Client, err: Error | undefined): void {
    if (client !== this.client) return; // still connecting (connect() reports it), or already handled
    this.client = undefined;
    this.connecting = undefined;
    if (this.stopped) return;
    this.log?.warn('lost the LISTEN connection to Postgres; connecting again every second', { err });
    this.reconnect();
  }

  private reconnect(): void {
    setTimeout(() => {
      if (this.stopped) return;
      this.start().then(
        () => {
          this.log?.info('LISTEN connection to Postgres restored');
          this.wakeAll();
        },
        () => this.reconnect(),
      );
    }, RECONNECT_MS).unref();
  }

  private wakeAll(): void {
    for (const set of this.listeners.values()) for (const l of set) l(-1);
  }

  subscribe(sessionId: string, listener: Listener): () => void {
    let set = this.listeners.get(sessionId);
    if (!set) this.listeners.set(sessionId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(sessionId);
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.client;
    this.client = undefined;
    this.connecting = undefined;
    await c?.end().catch(() => undefined);
  }
}

// Every swap and every block, recorded off the request path: the proxy queues a record and a background
// flush writes interceptions rows and `credential.used` / `egress.blocked` session events in batches.
// A record holds the host, method, path (no query), credential name and rule; never a value.
import { db } from '../lib/db.ts';
import { appendEvents } from '../lib/events.ts';
import type { Logger } from '../lib/log.ts';

export interface Interception {
  sessionId: string;
  at: Date;
  host: string;
  method: string;
  /** The request path without its query (a query may hold a stub or, after a swap, a value). */
  path: string;
  credentialName: string | null;
  decision: 'swapped' | 'blocked';
  rule: string;
}

export interface Recorder {
  record(i: Interception): void;
  /** Writes what is queued; resolves when it is stored. */
  flush(): Promise<void>;
}

const FLUSH_MS = 50;
const MAX_QUEUE = 10_000;

export class DbRecorder implements Recorder {
  private queue: Interception[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private dropped = 0;

  constructor(private readonly log: Logger) {}

  record(i: Interception): void {
    this.log.info(i.decision === 'blocked' ? 'request blocked' : 'credential swapped', { ...i });
    if (this.queue.length >= MAX_QUEUE) {
      this.dropped++;
      return;
    }
    this.queue.push(i);
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    this.flushing = this.flushing.then(() => this.write(batch));
    return this.flushing;
  }

  private async write(batch: Interception[]): Promise<void> {
    if (this.dropped) {
      this.log.error('interception queue overflowed; records dropped', { dropped: this.dropped });
      this.dropped = 0;
    }
    if (batch.length === 0) return;
    try {
      const rows = await db().interception.createManyAndReturn({
        data: batch.map((i) => ({
          sessionId: i.sessionId,
          createdAt: i.at,
          host: i.host,
          method: i.method,
          path: i.path,
          credentialName: i.credentialName,
          decision: i.decision,
          rule: i.rule,
        })),
        select: { id: true },
      });
      const bySession = new Map<string, { key: string; type: 'credential.used' | 'egress.blocked'; data: Record<string, unknown> }[]>();
      batch.forEach((i, n) => {
        const events = bySession.get(i.sessionId) ?? [];
        events.push({
          key: `interception:${rows[n]!.id}`,
          type: i.decision === 'blocked' ? 'egress.blocked' : 'credential.used',
          data: { host: i.host, method: i.method, path: i.path, credential: i.credentialName, rule: i.rule, at: i.at.toISOString() },
        });
        bySession.set(i.sessionId, events);
      });
      for (const [sessionId, events] of bySession) await appendEvents(sessionId, events);
    } catch (err) {
      this.log.error('could not store interceptions', { count: batch.length, err });
    }
  }
}

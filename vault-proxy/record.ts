// Every swap and every block, recorded off the request path. A record holds the host, method, path (no
// query), credential name and rule; never a value. Locally the proxy queues records and a background
// flush stores them (DbRecorder); in a sandbox pod the sidecar only queues them (queue.ts) and the
// worker drains and stores them. Either way storeInterceptions writes the interceptions rows and the
// `credential.used` / `egress.blocked` session events, keyed by the record's key so storing a record
// twice keeps one of each.
import { randomBytes } from 'node:crypto';
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

/** `<epoch>:<seq>`: the epoch is random per recorder, so keys stay unique across proxy restarts. */
export type KeyedInterception = Interception & { key: string };

export interface Recorder {
  record(i: Interception): void;
  /** Writes what is queued; resolves when it is stored. */
  flush(): Promise<void>;
}

export const MAX_QUEUE = 10_000;
const FLUSH_MS = 50;

export const newEpoch = () => randomBytes(8).toString('hex');

export function logInterception(log: Logger, i: Interception): void {
  log.info(i.decision === 'blocked' ? 'request blocked' : 'credential swapped', { ...i });
}

/** Stores a batch idempotently: rows by their unique key, events by `interception:<key>`. */
export async function storeInterceptions(batch: KeyedInterception[]): Promise<void> {
  if (batch.length === 0) return;
  await db().interception.createMany({
    data: batch.map((i) => ({
      key: i.key,
      sessionId: i.sessionId,
      createdAt: i.at,
      host: i.host,
      method: i.method,
      path: i.path,
      credentialName: i.credentialName,
      decision: i.decision,
      rule: i.rule,
    })),
    skipDuplicates: true,
  });
  const bySession = new Map<string, { key: string; type: 'credential.used' | 'egress.blocked'; data: Record<string, unknown> }[]>();
  for (const i of batch) {
    const events = bySession.get(i.sessionId) ?? [];
    events.push({
      key: `interception:${i.key}`,
      type: i.decision === 'blocked' ? 'egress.blocked' : 'credential.used',
      data: { host: i.host, method: i.method, path: i.path, credential: i.credentialName, rule: i.rule, at: i.at.toISOString() },
    });
    bySession.set(i.sessionId, events);
  }
  for (const [sessionId, events] of bySession) await appendEvents(sessionId, events);
}

export class DbRecorder implements Recorder {
  private readonly epoch = newEpoch();
  private seq = 0;
  private queue: KeyedInterception[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private dropped = 0;

  constructor(private readonly log: Logger) {}

  record(i: Interception): void {
    logInterception(this.log, i);
    if (this.queue.length >= MAX_QUEUE) {
      this.dropped++;
      return;
    }
    this.queue.push({ ...i, key: `${this.epoch}:${++this.seq}` });
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

  private async write(batch: KeyedInterception[]): Promise<void> {
    if (this.dropped) {
      this.log.error('interception queue overflowed; records dropped', { dropped: this.dropped });
      this.dropped = 0;
    }
    try {
      await storeInterceptions(batch);
    } catch (err) {
      this.log.error('could not store interceptions', { count: batch.length, err });
    }
  }
}

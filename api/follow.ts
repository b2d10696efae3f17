// Follows a session's event log: what is stored after a seq, then live. Live events come with the
// process's EventBus notifications (one LISTEN connection), and are handed on only when each follows
// the last one handed out: one transaction's events are numbered in order, and a session's
// transactions commit in seq order (appendEventsSql numbers them under the session row's lock).
// Anything else (a gap, an event too large for a notification, a reconnect) is read from the table
// after that last seq, so nothing is delivered twice or out of order, and nothing is skipped.
import { listEvents, type EventBus } from '../lib/events.ts';
import type { SessionEvent } from '../lib/types.ts';

const BATCH = 500;

/**
 * Yields batches of events in seq order; an empty batch when `idleMs` passed without any (a
 * keep-alive tick). Ends when `signal` aborts, or with `replayOnly` once the stored events are out
 * (for a session that has ended: nothing more will come).
 */
export async function* followEvents(
  bus: EventBus,
  sessionId: string,
  afterSeq: number,
  signal: AbortSignal,
  idleMs: number,
  replayOnly = false,
): AsyncGenerator<SessionEvent[]> {
  let last = afterSeq; // handed out
  let pending = true; // read from the table (first: replay what is stored)
  let reading = false;
  const inbox: SessionEvent[] = []; // notified, after `last`, in order, without gaps
  let wake: (() => void) | undefined;
  const unsubscribe = bus.subscribe(sessionId, (seq, event) => {
    const newest = inbox.at(-1)?.seq ?? last;
    if (seq !== -1 && seq <= newest) return;
    if (event && seq === newest + 1 && !pending && !reading && inbox.length < BATCH) inbox.push(event);
    else pending = true;
    wake?.();
  });
  try {
    while (!signal.aborted) {
      if (pending) {
        pending = false;
        inbox.length = 0; // the read has them
        reading = true;
        const events = await listEvents(sessionId, last, BATCH).finally(() => (reading = false));
        if (events.length === BATCH) pending = true;
        if (events.length > 0) {
          last = events[events.length - 1]!.seq;
          yield events;
        }
        if (replayOnly && events.length < BATCH) return;
        continue;
      }
      if (inbox.length > 0) {
        const events = inbox.splice(0);
        last = events[events.length - 1]!.seq;
        yield events;
        continue;
      }
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => done(false), idleMs);
        const onAbort = () => done(true);
        const done = (v: boolean) => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          wake = undefined;
          resolve(v);
        };
        wake = () => done(true);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      if (!woken && !signal.aborted) yield [];
    }
  } finally {
    unsubscribe();
  }
}

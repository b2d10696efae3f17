// Follows a session's event log: what is stored after a seq, then live. The process's EventBus
// (one LISTEN connection) only wakes us; the events always come from listEvents after the last seq
// handed out, so nothing is delivered twice or out of order, and a missed notification only delays.
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
  let last = afterSeq;
  let pending = true; // replay what is stored first
  let wake: (() => void) | undefined;
  const unsubscribe = bus.subscribe(sessionId, (seq) => {
    if (seq !== -1 && seq <= last) return;
    pending = true;
    wake?.();
  });
  try {
    while (!signal.aborted) {
      if (pending) {
        pending = false;
        const events = await listEvents(sessionId, last, BATCH);
        if (events.length === BATCH) pending = true;
        if (events.length > 0) {
          last = events[events.length - 1]!.seq;
          yield events;
        }
        if (replayOnly && events.length < BATCH) return;
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

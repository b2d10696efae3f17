// Pod mode: the sidecar has no database, so it keeps its interception records in memory (bounded; an
// overflow drops and counts) until the worker drains them over the control port. Draining is
// at-least-once: a drain names the last record the worker stored (`after`, in this queue's epoch),
// which removes those; the rest come back until a later drain acknowledges them. The worker stores
// each record under `<epoch>:<seq>`, so a record sent twice (a lost response) is stored once.
import type { Logger } from '../lib/log.ts';
import { MAX_QUEUE, logInterception, newEpoch, type Interception, type Recorder } from './record.ts';

export type QueuedInterception = Interception & { seq: number };

export interface DrainRequest {
  /** The epoch `after` belongs to; a different one (the sidecar restarted) acknowledges nothing. */
  epoch?: string;
  after: number;
}

const DRAIN_LIMIT = 500;

export class InterceptionQueue implements Recorder {
  /** New on each start of the sidecar: sequence numbers restart with it. */
  readonly epoch = newEpoch();
  private seq = 0;
  private queue: QueuedInterception[] = [];
  private dropped = 0;

  constructor(private readonly log: Logger) {}

  record(i: Interception): void {
    logInterception(this.log, i);
    if (this.queue.length >= MAX_QUEUE) {
      if (this.dropped++ % 1000 === 0) this.log.error('interception queue full (is the worker draining?); records dropped', { dropped: this.dropped });
      return;
    }
    this.queue.push({ ...i, seq: ++this.seq });
  }

  /** Nothing to write here: the worker drains. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  drain(req: DrainRequest): { epoch: string; records: QueuedInterception[]; dropped: number } {
    if (req.epoch === this.epoch) this.queue = this.queue.filter((r) => r.seq > req.after);
    return { epoch: this.epoch, records: this.queue.slice(0, DRAIN_LIMIT), dropped: this.dropped };
  }
}

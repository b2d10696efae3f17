// Keeps the stack's processes running: a child that exits on its own is restarted with exponential
// backoff (logged to the console and to its log file); stopAll() stops them in reverse start order.
import fs from 'node:fs';
import type { ChildHandle } from './child.ts';
import { status } from './console.ts';

export interface Stoppable {
  name: string;
  stop(): Promise<void>;
}

interface Entry {
  name: string;
  start: () => Promise<ChildHandle>;
  current?: ChildHandle;
  restarts: number;
  timer?: NodeJS.Timeout;
}

const BACKOFF_MS = [500, 1_000, 2_000, 5_000, 10_000, 30_000];
// A child that ran this long before dying is restarted at the first backoff step again.
const HEALTHY_AFTER_MS = 60_000;

export class Supervisor {
  private entries: Array<Entry | Stoppable> = [];
  private stopping = false;

  /** report: where a process event goes (npm start's console lines by default). */
  constructor(private readonly report: typeof status = status) {}

  /** Starts a supervised child and waits until start() reports it ready. */
  async add<T extends ChildHandle>(name: string, start: () => Promise<T>): Promise<T> {
    const entry: Entry = { name, start, restarts: 0 };
    this.entries.push(entry);
    const first = await start();
    // Started in parallel with something that failed: stopAll() has run already.
    if (this.stopping) {
      await first.stop();
      throw new Error(`${name} started while the stack was stopping`);
    }
    entry.current = first;
    this.watch(entry, first);
    return first;
  }

  /** Something stopped with the rest but not restarted (the in-process model server, sandboxes). */
  addStoppable(s: Stoppable): void {
    this.entries.push(s);
  }

  private watch(entry: Entry, handle: ChildHandle): void {
    const startedAt = Date.now();
    void handle.exited.then(({ code, signal }) => {
      if (this.stopping || entry.current !== handle) return;
      if (Date.now() - startedAt > HEALTHY_AFTER_MS) entry.restarts = 0;
      const delay = BACKOFF_MS[Math.min(entry.restarts, BACKOFF_MS.length - 1)]!;
      entry.restarts++;
      const why = signal ? `signal ${signal}` : `exit code ${code}`;
      this.report(entry.name, 'crashed', `${why}; restart #${entry.restarts} in ${delay} ms (log: ${handle.logPath})`);
      fs.appendFileSync(handle.logPath, `--- ${new Date().toISOString()} supervisor: exited (${why}), restart #${entry.restarts} in ${delay} ms\n`);
      entry.timer = setTimeout(() => void this.restart(entry), delay);
    });
  }

  private async restart(entry: Entry): Promise<void> {
    if (this.stopping) return;
    try {
      const handle = await entry.start();
      if (this.stopping) return void (await handle.stop());
      entry.current = handle;
      this.report(entry.name, 'restarted', `pid ${handle.pid}`);
      this.watch(entry, handle);
    } catch (err) {
      const delay = BACKOFF_MS[Math.min(entry.restarts++, BACKOFF_MS.length - 1)]!;
      this.report(entry.name, 'crashed', `restart failed: ${(err as Error).message.split('\n')[0]}; next try in ${delay} ms`);
      entry.timer = setTimeout(() => void this.restart(entry), delay);
    }
  }

  /** Stops everything, last started first. Safe to call twice. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const entry of [...this.entries].reverse()) {
      if ('restarts' in entry) {
        clearTimeout(entry.timer);
        if (!entry.current) continue;
        await entry.current.stop().catch(() => {});
      } else {
        await entry.stop().catch((err: Error) => this.report(entry.name, 'failed', err.message));
      }
      this.report(entry.name, 'stopped');
    }
  }
}

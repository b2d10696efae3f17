// Spawns one long-running child with its output appended to a log file, and stops it (and every
// process it started) by signalling its process group.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface ChildOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logPath: string;
  /** The signal that asks the process to shut down cleanly (Postgres wants SIGINT for a fast shutdown). */
  stopSignal?: NodeJS.Signals;
}

export interface ChildHandle {
  name: string;
  pid: number;
  logPath: string;
  /** Resolves with the exit code (or the signal) when the process ends, however it ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
  /** Stops the whole process group: the stop signal, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

// Every child this process started that has not exited yet, including ones still starting up.
const live = new Set<ChildHandle>();

/** Kills whatever is still running (last resort on shutdown: e.g. a child that was mid-start when start-up failed). */
export async function killRemainingChildren(): Promise<void> {
  await Promise.all([...live].map((h) => h.stop(0)));
}

// Each start opens its section of the log with this line; startupLog() reads from the last one.
const START_LINE = ' starting ';
const startLine = (name: string, commandLine: string) => `--- ${new Date().toISOString()}${START_LINE}${name}: ${commandLine}`;
const isStartLine = (line: string) => line.startsWith('--- ') && line.includes(START_LINE);

export function spawnLogged(opts: ChildOptions): ChildHandle {
  fs.mkdirSync(path.dirname(opts.logPath), { recursive: true });
  const log = fs.openSync(opts.logPath, 'a');
  fs.writeSync(log, `\n${startLine(opts.name, `${opts.command} ${opts.args.join(' ')}`)}\n`);
  // setpriv (util-linux) execs the command with a parent-death signal: if this process dies without
  // stopping it (SIGKILL, the OOM killer), the child gets its stop signal instead of living on
  // detached, holding its port and data dir against the next start.
  const pdeathsig = ['--pdeathsig', opts.stopSignal ?? 'SIGTERM', '--'];
  const child: ChildProcess = spawn('setpriv', [...pdeathsig, opts.command, ...opts.args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', log, log],
    // Its own process group, so stop() reaches grandchildren (tsx runs node under itself) and a
    // Ctrl-C in the terminal reaches only the supervisor, which stops children in order.
    detached: true,
  });
  fs.closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${opts.name} (${opts.command})`);
  const pid = child.pid;
  let running = true;
  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      running = false;
      // Whatever the leader leaves behind goes with it: a SIGKILLed tsx would otherwise leave its
      // node child running next to the restarted one. Exited means all of them are gone, with the
      // ports they held (the gateway's worker process takes a few ms longer to die than its leader).
      signalGroup('SIGKILL');
      void groupGone(pid).then(() => resolve({ code, signal }));
    });
    child.on('error', () => {
      running = false;
      resolve({ code: null, signal: null });
    });
  });
  const handle: ChildHandle = {
    name: opts.name,
    pid,
    logPath: opts.logPath,
    exited,
    get running() {
      return running;
    },
    async stop(graceMs = 10_000) {
      if (running) {
        child.kill(opts.stopSignal ?? 'SIGTERM');
        const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  live.add(handle);
  void exited.then(() => live.delete(handle));
  return handle;
}

/** Polls check() until it returns true, failing with what the log says if the child dies or time runs out. */
export async function waitReady(
  handle: ChildHandle,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!handle.running) throw new Error(`${handle.name} exited during start-up:\n${startupLog(handle.logPath)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      await handle.stop(2_000);
      throw new Error(`${handle.name} not ready after ${timeoutMs} ms:\n${startupLog(handle.logPath)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Lines that say why a start failed: a Go panic, Temporal's (slog) errors, a Python traceback's end, Postgres's FATAL.
const CAUSE = /^panic:|\blevel=ERROR\b|^[A-Za-z]*Error: |\bFATAL:/;
const TAIL_LINES = 15;

/**
 * The log of the latest start: the lines naming the cause (a panic's goroutine dump would push them
 * out of a plain tail), then the last lines.
 */
export function startupLog(logPath: string): string {
  let text: string;
  try {
    text = fs.readFileSync(logPath, 'utf8');
  } catch {
    return '(no log)';
  }
  const all = text.trimEnd().split('\n');
  const start = all.findLastIndex(isStartLine);
  const latest = all.slice(start + 1); // after the marker line (which echoes the command line), or all of it
  const causes = latest.filter((l) => CAUSE.test(l)).slice(0, 5);
  const tail = latest.slice(-TAIL_LINES).filter((l) => !causes.includes(l));
  return [...causes, ...(causes.length && tail.length ? ['…'] : []), ...tail].join('\n');
}

/** Resolves once no process of the group is left (or after 5 s, to never hang a stop on one). */
async function groupGone(pgid: number): Promise<void> {
  for (const deadline = Date.now() + 5_000; Date.now() < deadline; ) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return; // ESRCH: none left
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

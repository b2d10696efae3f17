// The Temporal dev server (the `temporal` CLI built by bin/setup) with a persistent SQLite file,
// its Web UI, and Berth's search attributes registered.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_FLAGS } from '../../workflows/messages.ts';
import { spawnLogged, waitReady, type ChildHandle } from './child.ts';
import { assertPortFree, freePort } from './ports.ts';

export const TEMPORAL_BIN = fileURLToPath(new URL('../../.tools/bin/temporal', import.meta.url));

export interface TemporalOptions {
  dataDir: string;
  port: number;
  uiPort: number;
  namespace?: string;
  /** Defaults to <dataDir>/temporal.sqlite. */
  dbFile?: string;
  logPath?: string;
}

export interface TemporalHandle extends ChildHandle {
  address: string;
  uiUrl: string;
  namespace: string;
  dbFile: string;
}

/** The dev server's command line: its SQLite file and ports, Berth's search attributes, the settings below. */
async function temporalCommand(opts: TemporalOptions): Promise<string[]> {
  const dbFile = opts.dbFile ?? path.join(opts.dataDir, 'temporal.sqlite');
  const args = [
    'server', 'start-dev',
    '--db-filename', dbFile,
    '--ip', '127.0.0.1',
    '--port', String(opts.port),
    '--ui-port', String(opts.uiPort),
    // Left unset, these pick random ports that can collide with a test's freshly chosen ones.
    '--http-port', String(await freePort()),
    '--metrics-port', String(await freePort()),
    '--namespace', opts.namespace ?? 'default',
    '--log-level', 'warn',
    // A worker that schedules an activity it can run gets it in the same response: one round trip
    // through the server fewer per model and tool step.
    '--dynamic-config-value', 'system.enableActivityEagerExecution=true',
    // WAL without an fsync per commit: a killed server loses nothing (the OS has the writes); only a
    // power cut can lose the last commits, and each workflow task costs no fsync.
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
  ];
  for (const flag of SEARCH_ATTRIBUTE_FLAGS) args.push('--search-attribute', flag);
  return [TEMPORAL_BIN, ...args];
}

export async function startTemporal(opts: TemporalOptions): Promise<TemporalHandle> {
  if (!fs.existsSync(TEMPORAL_BIN)) throw new Error(`${TEMPORAL_BIN} not found: run bin/setup`);
  const namespace = opts.namespace ?? 'default';
  const dbFile = opts.dbFile ?? path.join(opts.dataDir, 'temporal.sqlite');
  const logPath = opts.logPath ?? path.join(opts.dataDir, 'logs', 'temporal.log');
  fs.mkdirSync(path.dirname(dbFile), { recursive: true });
  await assertPortFree(opts.port, 'Temporal');
  await assertPortFree(opts.uiPort, 'the Temporal Web UI');
  const [command, ...args] = await temporalCommand({ ...opts, dbFile });
  // One Go scheduler thread: the dev server shares a small machine with every other process, and
  // much of a turn's time in it is hand-offs between goroutines, which one thread makes without
  // waking another: quicker per message and less CPU under load (DEVELOPERS.md). GOMAXPROCS overrides.
  const env = { ...process.env, GOMAXPROCS: process.env.GOMAXPROCS ?? '1' };
  const child = spawnLogged({ name: 'temporal', command: command!, args, env, logPath, stopSignal: 'SIGTERM' });
  const address = `127.0.0.1:${opts.port}`;
  await waitReady(child, () => namespaceReady(address, namespace), 60_000);
  return Object.assign(child, { address, uiUrl: `http://127.0.0.1:${opts.uiPort}`, namespace, dbFile });
}

async function namespaceReady(address: string, namespace: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1_000 });
  try {
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } finally {
    await connection.close();
  }
}

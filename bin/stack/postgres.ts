// PostgreSQL 15 with its own data directory, listening on 127.0.0.1:<port> and on a socket inside
// that directory.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { spawnLogged, startupLog, waitReady, type ChildHandle } from './child.ts';
import { assertPortFree } from './ports.ts';

const PG_BIN = '/usr/lib/postgresql/15/bin';
export const PG_USER = 'berth';
export const PG_DB = 'berth';

export interface PostgresOptions {
  /** Berth's data directory; Postgres lives in <dataDir>/postgres. */
  dataDir: string;
  port: number;
  logPath?: string;
}

export interface PostgresHandle extends ChildHandle {
  port: number;
  url: string;
}

/**
 * Postgres refuses to run as root. As root, it runs in a user namespace whose uid 1000 is root
 * outside: Postgres sees an ordinary user, while its files stay root's and any directory root can
 * reach (a clone under /root, say) works. Not as root, it runs as the current user.
 */
function wrap(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['unshare', ['--user', '--map-user=1000', '--map-group=1000', '--', cmd, ...args]];
}

export async function startPostgres(opts: PostgresOptions): Promise<PostgresHandle> {
  if (!fs.existsSync(`${PG_BIN}/postgres`)) throw new Error(`PostgreSQL 15 not found in ${PG_BIN}: run bin/setup`);
  const root = path.join(opts.dataDir, 'postgres');
  const pgdata = path.join(root, 'data');
  const sockets = path.join(root, 'run');
  const logPath = opts.logPath ?? path.join(opts.dataDir, 'logs', 'postgres.log');
  fs.mkdirSync(sockets, { recursive: true });
  // A data dir from before Berth ran Postgres in a user namespace belongs to the postgres user.
  if (process.getuid?.() === 0 && fs.statSync(root).uid !== 0) execFileSync('chown', ['-R', '0:0', root]);
  fs.chmodSync(root, 0o700);
  await assertPortFree(opts.port, 'PostgreSQL');

  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) {
    const [cmd, args] = wrap(`${PG_BIN}/initdb`, [
      '-D', pgdata, '-U', PG_USER, '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8',
      // An empty cluster needs no fsync of its template files: Postgres syncs at its first checkpoint.
      '--no-sync',
    ]);
    // Asynchronous, so the gateway starting alongside is not held up for the seconds initdb takes.
    const initdb = spawnLogged({ name: 'initdb', command: cmd, args, logPath });
    const { code } = await initdb.exited;
    if (code !== 0) throw new Error(`initdb failed (exit code ${code}):\n${startupLog(logPath)}`);
  }

  const [cmd, args] = wrap(`${PG_BIN}/postgres`, [
    '-D', pgdata,
    '-p', String(opts.port),
    '-c', 'listen_addresses=127.0.0.1',
    '-c', `unix_socket_directories=${sockets}`,
    '-c', 'max_connections=300',
  ]);
  const child = spawnLogged({ name: 'postgres', command: cmd, args, logPath, stopSignal: 'SIGINT' });
  const adminUrl = `postgresql://${PG_USER}@127.0.0.1:${opts.port}/postgres`;
  await waitReady(child, () => canConnect(adminUrl), 60_000);
  await ensureDatabase(adminUrl);
  return Object.assign(child, { port: opts.port, url: `postgresql://${PG_USER}@127.0.0.1:${opts.port}/${PG_DB}` });
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  try {
    await client.connect();
    return true;
  } finally {
    await client.end().catch(() => {});
  }
}

async function ensureDatabase(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [PG_DB]);
    if (!rowCount) await client.query(`CREATE DATABASE ${PG_DB}`);
  } finally {
    await client.end();
  }
}

// PostgreSQL 15 with its own data directory, listening on 127.0.0.1:<port> and on a socket inside
// that directory. Postgres refuses to run as root, so as root it runs as the unprivileged `postgres`
// user of the Debian package (or a `berth-pg` system user created on demand) via setpriv.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { spawnLogged, tailLog, waitReady, type ChildHandle } from './child.ts';
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

interface RunAs {
  uid: number;
  gid: number;
  /** Prefix that runs a command as that user (empty when we are not root). */
  wrap: (cmd: string, args: string[]) => [string, string[]];
}

function runAs(): RunAs {
  if (process.getuid?.() !== 0) {
    return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, wrap: (c, a) => [c, a] };
  }
  let user = 'postgres';
  if (spawnSync('id', ['-u', user]).status !== 0) {
    user = 'berth-pg';
    if (spawnSync('id', ['-u', user]).status !== 0) {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    }
  }
  const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
  return {
    uid,
    gid,
    wrap: (c, a) => ['setpriv', ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--', c, ...a]],
  };
}

function assertReachable(dir: string, as: RunAs): void {
  const [cmd, args] = as.wrap('/usr/bin/test', ['-x', dir]);
  if (spawnSync(cmd, args).status !== 0) {
    throw new Error(
      `the Postgres user (uid ${as.uid}) cannot reach ${dir}: a parent directory is not traversable; ` +
        `set BERTH_DATA_DIR to a directory outside it (e.g. under /var/tmp) or make its parents world-executable`,
    );
  }
}

export async function startPostgres(opts: PostgresOptions): Promise<PostgresHandle> {
  if (!fs.existsSync(`${PG_BIN}/postgres`)) throw new Error(`PostgreSQL 15 not found in ${PG_BIN}: run bin/setup`);
  const root = path.join(opts.dataDir, 'postgres');
  const pgdata = path.join(root, 'data');
  const sockets = path.join(root, 'run');
  const logPath = opts.logPath ?? path.join(opts.dataDir, 'logs', 'postgres.log');
  const as = runAs();
  fs.mkdirSync(sockets, { recursive: true });
  fs.chownSync(root, as.uid, as.gid);
  fs.chownSync(sockets, as.uid, as.gid);
  fs.chmodSync(root, 0o700);
  assertReachable(sockets, as);
  await assertPortFree(opts.port, 'PostgreSQL');

  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) {
    const [cmd, args] = as.wrap(`${PG_BIN}/initdb`, [
      '-D', pgdata, '-U', PG_USER, '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8',
      // An empty cluster needs no fsync of its template files: Postgres syncs at its first checkpoint.
      '--no-sync',
    ]);
    // Asynchronous, so the gateway starting alongside is not held up for the seconds initdb takes.
    const initdb = spawnLogged({ name: 'initdb', command: cmd, args, logPath });
    const { code } = await initdb.exited;
    if (code !== 0) throw new Error(`initdb failed (exit code ${code}):\n${tailLog(logPath)}`);
  }

  const [cmd, args] = as.wrap(`${PG_BIN}/postgres`, [
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

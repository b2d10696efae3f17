// A Postgres of a test file's own (a temp data dir, a free port, migrated), for a file that kills it
// or whose assertions cover every session in the database, so that other files are not disturbed.
import { migrate } from '../../bin/stack/migrations.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { startPostgres, type PostgresHandle } from '../../bin/stack/postgres.ts';
import { tempDir } from './temp.ts';

export interface OwnPostgres {
  /** The server running now (restart() replaces it). */
  pg: PostgresHandle;
  /** Starts it again on the same port and data dir (after a test killed it). */
  restart(): Promise<void>;
  /** Stops it and removes its data dir. */
  remove(): Promise<void>;
}

export async function ownPostgres(label: string): Promise<OwnPostgres> {
  const tmp = tempDir(`berth-${label}-`);
  const options = { dataDir: tmp.dir, port: await freePort() };
  const own: OwnPostgres = {
    pg: await startPostgres(options),
    async restart() {
      own.pg = await startPostgres(options);
    },
    async remove() {
      await own.pg.stop();
      tmp.remove();
    },
  };
  await migrate(own.pg.url);
  return own;
}

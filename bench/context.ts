// Context read benchmark: the transcript read of a model step, on the path of every turn, in a short
// and in a long session. It should not grow with the session (activities/model/context.ts).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { migrate } from '../bin/stack/migrations.ts';
import { freePort } from '../bin/stack/ports.ts';
import { startPostgres } from '../bin/stack/postgres.ts';

export async function benchContext(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-ctx-'));
  const pg = await startPostgres({ dataDir: dir, port: await freePort(), logPath: path.join(dir, 'postgres.log') });
  try {
    await migrate(pg.url);
    // Its own process: Berth's database module reads DATABASE_URL once per process.
    const reads = fileURLToPath(new URL('./context-reads.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', reads], {
      env: { ...process.env, DATABASE_URL: pg.url },
      maxBuffer: 1 << 20,
    });
    return JSON.parse(stdout) as Record<string, unknown>;
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

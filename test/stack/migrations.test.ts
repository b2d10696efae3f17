// The SQL migration runner against the real test Postgres, each case in a fresh database.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { DEFAULT_MIGRATIONS_DIR, migrate, MigrationError, readMigrations } from '../../bin/stack/migrations.ts';

const created: string[] = [];
const adminUrl = () => inject('databaseUrl').replace(/\/[^/]+$/, '/postgres');

async function freshDatabase(): Promise<string> {
  const name = `migtest_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  created.push(name);
  return inject('databaseUrl').replace(/\/[^/]+$/, `/${name}`);
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

const copies: string[] = [];

/** A copy of the real migrations folder the test may change. */
function migrationsCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-migrations-'));
  fs.cpSync(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  copies.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of copies) fs.rmSync(dir, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

describe('migrate', () => {
  it('applies every migration once, in order, recorded as Prisma records them', async () => {
    const url = await freshDatabase();
    const files = readMigrations();
    expect(files.length).toBeGreaterThan(0);
    const first = await migrate(url);
    expect(first.applied).toEqual(files.map((f) => f.name));

    const columns = await query<{ column_name: string; data_type: string; is_nullable: string }>(
      url,
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns.map((c) => [c.column_name, c.data_type, c.is_nullable])).toEqual([
      ['id', 'character varying', 'NO'],
      ['checksum', 'character varying', 'NO'],
      ['finished_at', 'timestamp with time zone', 'YES'],
      ['migration_name', 'character varying', 'NO'],
      ['logs', 'text', 'YES'],
      ['rolled_back_at', 'timestamp with time zone', 'YES'],
      ['started_at', 'timestamp with time zone', 'NO'],
      ['applied_steps_count', 'integer', 'NO'],
    ]);
    const rows = await query<Record<string, unknown>>(url, `SELECT * FROM "_prisma_migrations" ORDER BY started_at, migration_name`);
    expect(rows.map((r) => r.migration_name)).toEqual(files.map((f) => f.name));
    for (const [i, row] of rows.entries()) {
      const sql = fs.readFileSync(path.join(DEFAULT_MIGRATIONS_DIR, files[i]!.name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.applied_steps_count).toBe(1);
      expect(row.logs).toBeNull();
      expect(row.rolled_back_at).toBeNull();
    }
    // The schema is really there.
    expect(await query(url, `SELECT id FROM teams`)).toEqual([{ id: 'team_default' }]);
  });

  it('is idempotent, also when two processes migrate at once', async () => {
    const url = await freshDatabase();
    const [a, b] = await Promise.all([migrate(url), migrate(url)]);
    const total = readMigrations().length;
    expect(a.applied.length + b.applied.length).toBe(total);
    expect(a.applied.length === total || b.applied.length === total).toBe(true);
    const again = await migrate(url);
    expect(again).toEqual({ applied: [], alreadyApplied: readMigrations().map((m) => m.name) });
    expect(await query(url, `SELECT count(*)::int AS n FROM "_prisma_migrations"`)).toEqual([{ n: total }]);
  });

  it('refuses to run when an applied migration was edited', async () => {
    const url = await freshDatabase();
    const dir = migrationsCopy();
    await migrate(url, dir);
    const first = readMigrations(dir)[0]!;
    fs.appendFileSync(path.join(dir, first.name, 'migration.sql'), '\n-- edited after the fact\n');
    await expect(migrate(url, dir)).rejects.toThrow(MigrationError);
    await expect(migrate(url, dir)).rejects.toThrow(new RegExp(`${first.name} was modified after it was applied`));
  });

  it('applies a new migration after the others, and rolls a failing one back completely', async () => {
    const url = await freshDatabase();
    const dir = migrationsCopy();
    await migrate(url, dir);
    fs.mkdirSync(path.join(dir, '99990101000000_add_notes'));
    fs.writeFileSync(path.join(dir, '99990101000000_add_notes', 'migration.sql'), 'CREATE TABLE "notes" ("id" TEXT PRIMARY KEY);\n');
    expect((await migrate(url, dir)).applied).toEqual(['99990101000000_add_notes']);

    fs.mkdirSync(path.join(dir, '99990102000000_broken'));
    fs.writeFileSync(path.join(dir, '99990102000000_broken', 'migration.sql'), 'CREATE TABLE "half" ("id" TEXT);\nSELECT * FROM no_such_table;\n');
    await expect(migrate(url, dir)).rejects.toThrow(/99990102000000_broken failed and was rolled back/);
    expect(await query(url, `SELECT to_regclass('half') AS t`)).toEqual([{ t: null }]);
    expect(await query(url, `SELECT count(*)::int AS n FROM "_prisma_migrations" WHERE migration_name LIKE '9999%'`)).toEqual([{ n: 1 }]);
  });
});

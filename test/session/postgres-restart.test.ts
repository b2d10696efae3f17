// PostgreSQL killed (SIGKILL) in the middle of a turn and started again on the same data directory:
// the turn completes, and an event stream opened before the crash delivers every event once, in
// order, without reconnecting. This file runs its own Postgres so other files are not disturbed.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate } from '../../bin/stack/migrations.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { startPostgres, type PostgresHandle } from '../../bin/stack/postgres.ts';
import { assertOrderedOnce } from '../support/assertions.ts';
import { startBerth, type Berth } from '../support/berth.ts';

let pg: PostgresHandle;
let berth: Berth;
let options: Parameters<typeof startPostgres>[0];

beforeAll(async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-postgres-restart-'));
  options = { dataDir, port: await freePort() };
  pg = await startPostgres(options);
  await migrate(pg.url);
  berth = await startBerth({ name: 'postgres-restart', env: { DATABASE_URL: pg.url } });
});
afterAll(async () => {
  await berth?.stop();
  await pg?.stop();
  if (options) await rm(options.dataDir, { recursive: true, force: true });
});

it('carries on after Postgres is killed mid-turn and restarted; a stream opened before sees every event once', async () => {
  const model = berth.model('pg-restart');
  await berth.script(model, {
    rules: [
      { match: 'slow', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'sleep 3; echo slept' } }] }, { text: 'done sleeping' }] },
      { match: 'after', steps: [{ text: 'still here' }] },
    ],
  });
  const agent = await berth.createAgent({ model });
  const sid = (await berth.api.post('/v1/sessions', { agent_id: agent.id })).body.id;
  const stream = berth.api.events(sid, { until: (e) => e.type === 'turn.completed' && e.data.turn === 2, timeoutMs: 90_000 });
  const started = berth.api.events(sid, { until: (e) => e.type === 'tool.started' });
  await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'be slow' });
  await started;

  process.kill(-pg.pid, 'SIGKILL'); // the postmaster and every backend: no shutdown of its own
  await pg.exited;
  await new Promise((r) => setTimeout(r, 2_000)); // down for longer than a first reconnect's wait
  pg = await startPostgres(options);

  const next = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 60_000 });
  expect(next.at(-1)?.type).toBe('turn.completed');
  const after = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'after the restart' });
  expect(after.body).toMatchObject({ outcome: 'completed', text: 'still here' });

  const t = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
  expect(t.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
  expect(t[2].content).toBe('slept\n');
  const events = await stream;
  assertOrderedOnce(events);
  expect(events.map((e) => e.id)).toEqual(events.map((_e, i) => i + 1)); // none skipped
});

// PostgreSQL killed (SIGKILL) in the middle of a turn and started again on the same data directory:
// the turn completes, an event stream opened before the crash delivers every event once, in order,
// without reconnecting, and the API answers 503 (retry) rather than 500 while Postgres is down. This file runs its own Postgres so other files are not disturbed.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { assertOrderedOnce } from '../support/assertions.ts';
import { startBerth, type Berth } from '../support/berth.ts';
import { ownPostgres, type OwnPostgres } from '../support/own-postgres.ts';
import { expectSessionCarriesOn, sessionInSlowTurn } from '../support/slow-turn.ts';

let db: OwnPostgres;
let berth: Berth;

beforeAll(async () => {
  db = await ownPostgres('postgres-restart');
  berth = await startBerth({ name: 'postgres-restart', env: { DATABASE_URL: db.pg.url } });
});
afterAll(async () => {
  await berth?.stop();
  await db?.remove();
});

it('carries on after Postgres is killed mid-turn and restarted; a stream opened before sees every event once', async () => {
  const sid = await sessionInSlowTurn(berth, 'pg-restart');
  // A stream that has read the events so far (so its first read is done) before Postgres goes.
  let caughtUp!: () => void;
  const live = new Promise<void>((resolve) => (caughtUp = resolve));
  const stream = berth.api.events(sid, {
    until: (e) => {
      if (e.type === 'tool.started') caughtUp();
      return e.type === 'turn.completed' && e.data.turn === 2;
    },
    timeoutMs: 90_000,
  });
  await live;

  process.kill(-db.pg.pid, 'SIGKILL'); // the postmaster and every backend: no shutdown of its own
  await db.pg.exited;
  const downSince = Date.now();
  // Meanwhile the API says so in a way a client knows to retry: 503, not 500.
  for (const res of [await berth.api.get(`/v1/sessions/${sid}`), await berth.api.post('/v1/agents', { name: 'while down', model: 'm' })]) {
    expect(res).toMatchObject({ status: 503, body: { error: { code: 'database_unavailable' } } });
  }
  // Down for longer than a first reconnect's wait.
  await new Promise((r) => setTimeout(r, Math.max(0, 2_000 - (Date.now() - downSince))));
  await db.restart();

  await expectSessionCarriesOn(berth, sid);
  const events = await stream;
  assertOrderedOnce(events);
  expect(events.map((e) => e.id)).toEqual(events.map((_e, i) => i + 1)); // none skipped
});

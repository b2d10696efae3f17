// A web process killed before it could start a session's workflow, on a request without an
// Idempotency-Key, leaves a row that no workflow will ever answer for; the web processes' sweep
// marks it failed. This file runs its own Postgres, since the sweep looks at every recent session.
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { failUnstartedSessions } from '../../api/unstarted-sessions.ts';
import { closeDb } from '../../lib/db.ts';
import { startBerth, type Berth } from '../support/berth.ts';
import { ownPostgres, type OwnPostgres } from '../support/own-postgres.ts';
import { TEST_ADMIN_KEY } from '../support/processes.ts';
import { tcpProxy } from '../support/tcp-proxy.ts';

let db: OwnPostgres;
let berth: Berth;

beforeAll(async () => {
  db = await ownPostgres('unstarted');
  process.env.DATABASE_URL = db.pg.url; // for failUnstartedSessions here
  berth = await startBerth({ name: 'unstarted', env: { DATABASE_URL: db.pg.url } });
});
afterAll(async () => {
  await berth?.stop();
  await closeDb();
  await db?.remove();
});

it('marks failed a session whose creating web process died before its workflow started, and leaves the others', async () => {
  const model = berth.model('unstarted');
  await berth.script(model, [{ text: 'hi' }]);
  const agent = await berth.createAgent({ model });
  const idle = (await berth.api.post('/v1/sessions', { agent_id: agent.id })).body.id as string; // started, never used

  // The web process's Temporal connection goes through a proxy that then passes nothing either way.
  const proxy = await tcpProxy(berth.temporalAddress);
  const web = await berth.startWeb({ TEMPORAL_ADDRESS: proxy.address });
  proxy.drop('both');
  const cut = fetch(`${web.url}/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ agent_id: agent.id }),
  }).then(
    (res) => `answered ${res.status}`,
    () => 'cut',
  );
  const sessions = async () => ((await berth.api.get(`/v1/sessions?agent_id=${agent.id}`)).body.data as Array<{ id: string; status: string }>);
  await expect.poll(async () => (await sessions()).length, { timeout: 10_000 }).toBe(2);
  const orphan = (await sessions()).find((s) => s.id !== idle)!.id;
  process.kill(-web.pid, 'SIGKILL');
  expect(await cut).toBe('cut');
  await proxy.close();

  const connection = await Connection.connect({ address: berth.temporalAddress });
  expect(await failUnstartedSessions(new Client({ connection }), new Date(Date.now() + 1_000))).toEqual([orphan]);
  await connection.close();
  expect(Object.fromEntries((await sessions()).map((s) => [s.id, s.status]))).toEqual({ [orphan]: 'failed', [idle]: 'active' });
  const events = await berth.api.events(orphan, { until: (e) => e.type === 'session.status' });
  expect(events.at(-1)!.data).toEqual({ status: 'failed', sandbox: 'none', reason: 'its workflow never started: the request that created it did not finish' });
  expect((await berth.api.post(`/v1/sessions/${orphan}/messages`, { content: 'hello?' })).status).toBe(409);
  expect((await berth.api.post(`/v1/sessions/${idle}/messages?wait=true`, { content: 'hello' })).body).toMatchObject({ outcome: 'completed', text: 'hi' });
});

// The Temporal server stopped and started again on the same SQLite file in the middle of a session:
// the session carries on. This file runs its own Temporal server so other files are not disturbed.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { freePort } from '../../bin/stack/ports.ts';
import { startTemporal, type TemporalHandle } from '../../bin/stack/temporal.ts';
import { startBerth, type Berth } from '../support/berth.ts';
import { expectSessionCarriesOn, sessionInSlowTurn } from '../support/slow-turn.ts';

let temporal: TemporalHandle;
let berth: Berth;
let options: Parameters<typeof startTemporal>[0];

beforeAll(async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-temporal-restart-'));
  options = { dataDir, port: await freePort(), uiPort: await freePort() };
  temporal = await startTemporal(options);
  berth = await startBerth({ name: 'temporal-restart', temporalAddress: temporal.address });
});
afterAll(async () => {
  await berth?.stop();
  await temporal?.stop();
  if (options) await rm(options.dataDir, { recursive: true, force: true });
});

it('carries on after the Temporal server restarts on the same SQLite file', async () => {
  const sid = await sessionInSlowTurn(berth, 'restart');
  await temporal.stop();
  temporal = await startTemporal(options);
  await expectSessionCarriesOn(berth, sid);
});

// The Temporal server stopped and started again on the same SQLite file in the middle of a session:
// the session carries on. This file runs its own Temporal server so other files are not disturbed.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../../bin/stack/ports.ts';
import { startTemporal, type TemporalHandle } from '../../bin/stack/temporal.ts';
import { startBerth, type Berth } from '../support/berth.ts';

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
  const model = berth.model('restart');
  await berth.script(model, {
    rules: [
      { match: 'slow', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'sleep 3; echo slept' } }] }, { text: 'done sleeping' }] },
      { match: 'after', steps: [{ text: 'still here' }] },
    ],
  });
  const agent = await berth.createAgent({ model });
  const sid = (await berth.api.post('/v1/sessions', { agent_id: agent.id })).body.id;
  const started = berth.api.events(sid, { until: (e) => e.type === 'tool.started' });
  await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'be slow' });
  await started;

  await temporal.stop();
  temporal = await startTemporal(options);

  const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 90_000 });
  expect(events.at(-1)?.type).toBe('turn.completed');
  const next = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'after the restart' });
  expect(next.status).toBe(200);
  const t = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
  expect(t.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
  expect(t[2].content).toBe('slept\n');
});

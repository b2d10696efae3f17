// Recorded histories of the session workflow replay without non-determinism errors, so a change to
// workflows/ that would break running sessions fails here. BERTH_RECORD_HISTORIES=1 also saves the
// fresh conversation as the fixture of the day (session-<date>.json); older ones stay, since sessions
// started by earlier workflow code are still running somewhere.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { TEMPORAL_BIN } from '../../bin/stack/temporal.ts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sandboxStoppedSignal } from '../../workflows/messages.ts';
import type { SseEvent } from '../support/api-client.ts';
import { startBerth, type Berth } from '../support/berth.ts';

const fixtures = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));
const workflowsPath = fileURLToPath(new URL('../../workflows/session.ts', import.meta.url));

let berth: Berth;
beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  berth = await startBerth({ name: 'replay', env: { BERTH_IDLE_TIMEOUT_S: '2' } });
});
afterAll(async () => {
  await berth?.stop();
});

it('replays a freshly recorded session (tools, sandbox stopped, abort, hibernation, end)', async () => {
  const model = berth.model('replay');
  await berth.script(model, {
    rules: [
      { match: 'tools', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'echo hi' } }, { name: 'write_file', arguments: { path: 'f', content: 'x' } }] }, { text: 'ok' }] },
      { match: 'long', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'sleep 30' } }] }, { text: 'never' }] },
      { steps: [{ text: 'plain' }] },
    ],
  });
  const agent = await berth.createAgent({ model });
  const sid = (await berth.api.post('/v1/sessions', { agent_id: agent.id, message: 'use tools' })).body.id;
  await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' });
  const connection = await Connection.connect({ address: berth.temporalAddress });
  const handle = new Client({ connection }).workflow.getHandle(sid);
  await handle.signal(sandboxStoppedSignal); // before the 2 s idle timer, so this hibernates the sandbox
  const hibernations = (all: SseEvent[]) => all.filter((e) => e.type === 'session.status' && e.data.status === 'hibernated').length;
  await berth.api.events(sid, { until: (_e, all) => hibernations(all) === 1 });
  const started = berth.api.events(sid, { until: (e) => e.type === 'tool.started' && e.data.turn === 2 });
  await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'long one' });
  await started;
  await berth.api.post(`/v1/sessions/${sid}/abort`, {});
  await berth.api.events(sid, { until: (_e, all) => hibernations(all) === 2, timeoutMs: 30_000 });
  await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'plain please' });
  await berth.api.delete(`/v1/sessions/${sid}`);

  const history = await handle.fetchHistory();
  await connection.close();
  await Worker.runReplayHistory({ workflowsPath }, history, sid);
  if (process.env.BERTH_RECORD_HISTORIES === '1') {
    // The CLI's JSON is the format Temporal documents for replay fixtures.
    const json = execFileSync(TEMPORAL_BIN, ['workflow', 'show', '-w', sid, '--address', berth.temporalAddress, '--output', 'json']);
    await writeFile(path.join(fixtures, `session-${new Date().toISOString().slice(0, 10)}.json`), json);
  }
});

it('replays every recorded history fixture', async () => {
  const files = (await readdir(fixtures)).filter((f) => f.endsWith('.json'));
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) {
    const history = JSON.parse(await readFile(path.join(fixtures, file), 'utf8'));
    await Worker.runReplayHistory({ workflowsPath }, history, file);
  }
});

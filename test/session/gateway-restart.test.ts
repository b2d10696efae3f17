// The LiteLLM gateway killed (SIGKILL) while it streams a reply, then started again: the model step is
// retried and the turn completes with the reply recorded once. This file runs its own gateway (in
// front of the shared scripted model) so other files are not disturbed.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { startGateway, TEST_GATEWAY_CONFIG, type GatewayHandle } from '../../bin/stack/gateway.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { assertOrderedOnce } from '../support/assertions.ts';
import { startBerth, type Berth } from '../support/berth.ts';
import { tempDir } from '../support/temp.ts';

let gateway: GatewayHandle;
let berth: Berth;
let options: Parameters<typeof startGateway>[0];
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  tmp = tempDir('berth-gateway-restart-');
  options = { dataDir: tmp.dir, port: await freePort(), modelServerUrl: inject('modelServerUrl'), configPath: TEST_GATEWAY_CONFIG };
  gateway = await startGateway(options);
  berth = await startBerth({ name: 'gateway-restart', env: { LITELLM_GATEWAY_URL: gateway.url, LITELLM_API_KEY: gateway.apiKey } });
});
afterAll(async () => {
  await berth?.stop();
  await gateway?.stop();
  tmp?.remove();
});

it('retries the model step after the gateway is killed mid-stream and restarted; the reply is recorded once', async () => {
  const model = berth.model('gw-restart');
  const chunks = Array.from({ length: 10 }, (_, i) => `part${i} `);
  await berth.script(model, [{ text: chunks.join(''), chunks, chunk_delay_ms: 300 }]);
  const sid = await berth.newSession(model);
  const streaming = berth.api.events(sid, { until: (_e, all) => all.filter((e) => e.type === 'message.delta').length >= 2 });
  await berth.api.post(`/v1/sessions/${sid}/messages`, { content: 'talk slowly' });
  await streaming;

  process.kill(-gateway.pid, 'SIGKILL');
  await gateway.exited;
  gateway = await startGateway(options);

  const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 90_000 });
  expect(events.at(-1)?.type).toBe('turn.completed');
  expect(events.some((e) => e.type === 'step.retry')).toBe(true);
  assertOrderedOnce(events);
  const t = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
  expect(t.map((m) => [m.role, m.content])).toEqual([['user', 'talk slowly'], ['assistant', chunks.join('')]]);
}, 120_000);

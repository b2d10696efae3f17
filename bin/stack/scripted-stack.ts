// The stack that tests and the benchmark run against: Postgres (migrated), a Temporal dev server,
// the model server in scripted mode and the real LiteLLM proxy in front of it, all on free ports
// under one directory. Berth's own worker and web processes are started on top (bin/stack/berth.ts).
import path from 'node:path';
import { killRemainingChildren } from './child.ts';
import { startGateway, TEST_GATEWAY_CONFIG, type GatewayHandle } from './gateway.ts';
import { migrate } from './migrations.ts';
import { startModelServer, type ModelServerHandle, type ModelServerOptions } from './model-server.ts';
import { freePort } from './ports.ts';
import { startPostgres, type PostgresHandle } from './postgres.ts';
import { startTemporal, type TemporalHandle, type TemporalOptions } from './temporal.ts';

export interface ScriptedStack {
  dir: string;
  pg: PostgresHandle;
  temporal: TemporalHandle;
  temporalOptions: TemporalOptions;
  model: ModelServerHandle;
  gateway: GatewayHandle;
  stop(): Promise<void>;
}

export async function startScriptedStack(dir: string, observe?: ModelServerOptions['observe']): Promise<ScriptedStack> {
  const logs = path.join(dir, 'logs');
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await killRemainingChildren(); // any still starting when start-up failed
  };
  try {
    const [pgPort, temporalPort, uiPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const temporalOptions = { dataDir: dir, port: temporalPort, uiPort, logPath: path.join(logs, 'temporal.log') };
    // LiteLLM takes longest to boot, so everything starts at once.
    const [pg, temporal, { model, gateway }] = await Promise.all([
      startPostgres({ dataDir: dir, port: pgPort, logPath: path.join(logs, 'postgres.log') }).then(async (h) => {
        stops.push(() => h.stop());
        await migrate(h.url);
        return h;
      }),
      startTemporal(temporalOptions).then((h) => {
        stops.push(() => h.stop());
        return h;
      }),
      startModelServer({ port: 0, scripted: true, chunkDelayMs: 0, logPath: path.join(logs, 'model-server.log'), observe }).then(async (model) => {
        stops.push(() => model.stop());
        const gateway = await startGateway({
          dataDir: dir, port: gatewayPort, modelServerUrl: model.url, configPath: TEST_GATEWAY_CONFIG, logPath: path.join(logs, 'gateway.log'),
        });
        stops.push(() => gateway.stop());
        return { model, gateway };
      }),
    ]);
    return { dir, pg, temporal, temporalOptions, model, gateway, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

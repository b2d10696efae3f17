// The stack that tests and the benchmark run against: Postgres (migrated), a Temporal dev server,
// the model server in scripted mode and the real LiteLLM proxy in front of it, all on free ports
// under one directory. Berth's own worker and web processes are started on top (bin/stack/berth.ts).
// Postgres and the gateway are supervised as under `npm start`: one that crashes (LiteLLM on Python
// before 3.12 can, see bin/setup) comes back on its port instead of failing every test after it.
// Temporal is not: tests stop and start it on purpose (test/support/global-setup.ts).
import path from 'node:path';
import { killRemainingChildren } from './child.ts';
import { startGateway, TEST_GATEWAY_CONFIG, type GatewayHandle } from './gateway.ts';
import { migrate } from './migrations.ts';
import { startModelServer, type ModelServerHandle, type ModelServerOptions } from './model-server.ts';
import { freePort } from './ports.ts';
import { startPostgres, type PostgresHandle } from './postgres.ts';
import { Supervisor } from './supervisor.ts';
import { startTemporal, type TemporalHandle, type TemporalOptions } from './temporal.ts';

export interface ScriptedStack {
  dir: string;
  /** Postgres and the gateway running now (a restart after a crash replaces them). */
  readonly pg: PostgresHandle;
  temporal: TemporalHandle;
  temporalOptions: TemporalOptions;
  model: ModelServerHandle;
  readonly gateway: GatewayHandle;
  stop(): Promise<void>;
}

export async function startScriptedStack(dir: string, observe?: ModelServerOptions['observe']): Promise<ScriptedStack> {
  const logs = path.join(dir, 'logs');
  // A crash and its restart get a line on stderr (the benchmark's stdout is its JSON); stops none.
  const supervisor = new Supervisor((name, state, detail) => {
    if (state !== 'stopped') console.error(`${name}: ${state} ${detail}`.trimEnd());
  });
  const stops: Array<() => Promise<void>> = [() => supervisor.stopAll()];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await killRemainingChildren(); // any still starting when start-up failed
  };
  try {
    const [pgPort, temporalPort, uiPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const temporalOptions = { dataDir: dir, port: temporalPort, uiPort, logPath: path.join(logs, 'temporal.log') };
    // A supervised child's handle is the latest one it started (a restart replaces it: same port, data, key).
    let pg!: PostgresHandle;
    let gateway!: GatewayHandle;
    // LiteLLM takes longest to boot, so everything starts at once.
    const [temporal, model] = await Promise.all([
      startTemporal(temporalOptions).then((h) => {
        stops.push(() => h.stop());
        return h;
      }),
      startModelServer({ port: 0, scripted: true, chunkDelayMs: 0, logPath: path.join(logs, 'model-server.log'), observe }).then(async (model) => {
        stops.push(() => model.stop());
        await supervisor.add('gateway', async () =>
          (gateway = await startGateway({
            dataDir: dir, port: gatewayPort, modelServerUrl: model.url, configPath: TEST_GATEWAY_CONFIG, logPath: path.join(logs, 'gateway.log'),
          })));
        return model;
      }),
      supervisor
        .add('postgres', async () => (pg = await startPostgres({ dataDir: dir, port: pgPort, logPath: path.join(logs, 'postgres.log') })))
        .then((h) => migrate(h.url)),
    ]);
    return {
      dir, temporal, temporalOptions, model, stop,
      get pg() {
        return pg;
      },
      get gateway() {
        return gateway;
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// Vitest global setup: ONE embedded stack for the whole run — Postgres (temp dir, free port,
// migrated), a Temporal dev server (temp SQLite, free ports), the model server in scripted mode and
// the real LiteLLM proxy in front of it. Test files reach them through inject(); each file starts
// its own worker and web (test/support/processes.ts). A small HTTP control port lets a test stop and
// restart Temporal on the same SQLite file.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { killRemainingChildren } from '../../bin/stack/child.ts';
import { startGateway, TEST_GATEWAY_CONFIG } from '../../bin/stack/gateway.ts';
import { migrate } from '../../bin/stack/migrations.ts';
import { startModelServer } from '../../bin/stack/model-server.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { startPostgres } from '../../bin/stack/postgres.ts';
import { startTemporal, type TemporalHandle } from '../../bin/stack/temporal.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stackDir: string;
    databaseUrl: string;
    temporalAddress: string;
    temporalNamespace: string;
    temporalUiUrl: string;
    /** POST /temporal/stop and /temporal/start (same ports, same SQLite file). */
    stackControlUrl: string;
    gatewayUrl: string;
    gatewayApiKey: string;
    /** The scripted model server's base URL (with /v1); /__scripts and /__requests live at its root. */
    modelServerUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Postgres runs as an unprivileged user, which must be able to traverse this directory.
  const stackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-stack-'));
  fs.chmodSync(stackDir, 0o755);
  const logs = path.join(stackDir, 'logs');
  const stops: Array<() => Promise<void>> = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await killRemainingChildren(); // any still starting when set-up failed
    if (!process.env.BERTH_KEEP_TEST_STACK) fs.rmSync(stackDir, { recursive: true, force: true });
  };
  try {
    const [pgPort, temporalPort, uiPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const temporalOpts = { dataDir: stackDir, port: temporalPort, uiPort, logPath: path.join(logs, 'temporal.log') };
    let temporal: TemporalHandle | undefined;
    // LiteLLM takes longest to boot, so everything starts at once.
    const [pg, , gateway] = await Promise.all([
      startPostgres({ dataDir: stackDir, port: pgPort, logPath: path.join(logs, 'postgres.log') }).then(async (h) => {
        stops.push(() => h.stop());
        await migrate(h.url);
        return h;
      }),
      startTemporal(temporalOpts).then((h) => {
        temporal = h;
        stops.push(() => temporal?.stop() ?? Promise.resolve());
      }),
      startModelServer({ port: 0, scripted: true, chunkDelayMs: 0, logPath: path.join(logs, 'model-server.log') }).then(async (model) => {
        stops.push(() => model.stop());
        const gw = await startGateway({
          dataDir: stackDir, port: gatewayPort, modelServerUrl: model.url, configPath: TEST_GATEWAY_CONFIG, logPath: path.join(logs, 'gateway.log'),
        });
        stops.push(() => gw.stop());
        return { url: gw.url, apiKey: gw.apiKey, modelUrl: model.url };
      }),
    ]);

    const control = http.createServer((req, res) => {
      const run = async () => {
        if (req.method === 'POST' && req.url === '/temporal/stop') {
          await temporal?.stop();
          temporal = undefined;
        } else if (req.method === 'POST' && req.url === '/temporal/start') {
          temporal ??= await startTemporal(temporalOpts);
        } else {
          return void res.writeHead(404).end();
        }
        res.writeHead(204).end();
      };
      run().catch((err: Error) => res.writeHead(500).end(err.message));
    });
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise<void>((resolve) => control.close(() => resolve())));

    project.provide('stackDir', stackDir);
    project.provide('databaseUrl', pg.url);
    project.provide('temporalAddress', `127.0.0.1:${temporalPort}`);
    project.provide('temporalNamespace', 'default');
    project.provide('temporalUiUrl', `http://127.0.0.1:${uiPort}`);
    project.provide('stackControlUrl', `http://127.0.0.1:${(control.address() as { port: number }).port}`);
    project.provide('gatewayUrl', gateway.url);
    project.provide('gatewayApiKey', gateway.apiKey);
    project.provide('modelServerUrl', gateway.modelUrl);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

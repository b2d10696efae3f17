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
import { startScriptedStack } from '../../bin/stack/scripted-stack.ts';
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
  const stackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-stack-'));
  const stack = await startScriptedStack(stackDir);
  let temporal: TemporalHandle | undefined = stack.temporal;
  const control = http.createServer((req, res) => {
    const run = async () => {
      if (req.method === 'POST' && req.url === '/temporal/stop') {
        await temporal?.stop();
        temporal = undefined;
      } else if (req.method === 'POST' && req.url === '/temporal/start') {
        temporal ??= await startTemporal(stack.temporalOptions);
      } else {
        return void res.writeHead(404).end();
      }
      res.writeHead(204).end();
    };
    run().catch((err: Error) => res.writeHead(500).end(err.message));
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));

  project.provide('stackDir', stackDir);
  project.provide('databaseUrl', stack.pg.url);
  project.provide('temporalAddress', stack.temporal.address);
  project.provide('temporalNamespace', 'default');
  project.provide('temporalUiUrl', stack.temporal.uiUrl);
  project.provide('stackControlUrl', `http://127.0.0.1:${(control.address() as { port: number }).port}`);
  project.provide('gatewayUrl', stack.gateway.url);
  project.provide('gatewayApiKey', stack.gateway.apiKey);
  project.provide('modelServerUrl', stack.model.url);

  return async () => {
    await new Promise<void>((resolve) => control.close(() => resolve()));
    await temporal?.stop();
    await stack.stop();
    if (!process.env.BERTH_KEEP_TEST_STACK) fs.rmSync(stackDir, { recursive: true, force: true });
  };
}

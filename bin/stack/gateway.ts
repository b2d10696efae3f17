// The local LiteLLM proxy, from a checked-in config (litellm.yaml; tests add litellm.test.yaml) less
// the provider routes whose key is unset (gateway-config.ts).
// It runs with its own master key and WITHOUT DATABASE_URL: given one, LiteLLM tries to set up its
// own Prisma schema in it, which needs a download and would touch Berth's database.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnLogged, waitReady, type ChildHandle } from './child.ts';
import { writeGatewayConfig } from './gateway-config.ts';
import { assertPortFree } from './ports.ts';
import { storedSecret } from './secrets.ts';

export const LITELLM_BIN = fileURLToPath(new URL('../../.tools/litellm/bin/litellm', import.meta.url));
export const GATEWAY_CONFIG = fileURLToPath(new URL('./litellm.yaml', import.meta.url));
export const TEST_GATEWAY_CONFIG = fileURLToPath(new URL('./litellm.test.yaml', import.meta.url));

export interface GatewayOptions {
  dataDir: string;
  port: number;
  /** The model server's base URL (with /v1) that the demo and scripted routes forward to. */
  modelServerUrl: string;
  configPath?: string;
  logPath?: string;
}

export interface GatewayHandle extends ChildHandle {
  port: number;
  url: string;
  /** The master key clients send as `Authorization: Bearer`. */
  apiKey: string;
  /** The model names it routes (a provider's as a wildcard, e.g. `openai/*`). */
  routes: string[];
}

export async function startGateway(opts: GatewayOptions): Promise<GatewayHandle> {
  if (!fs.existsSync(LITELLM_BIN)) throw new Error(`${LITELLM_BIN} not found: run bin/setup`);
  await assertPortFree(opts.port, 'the LiteLLM gateway');
  const apiKey = storedSecret(opts.dataDir, 'litellm-master-key', 'sk-berth-').value;
  const { DATABASE_URL: _notForLiteLLM, ...inherited } = process.env;
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    LITELLM_MASTER_KEY: apiKey,
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    LITELLM_TELEMETRY: 'False',
    BERTH_MODEL_SERVER_URL: opts.modelServerUrl,
    BERTH_MODEL_SERVER_KEY: 'berth-demo-needs-no-key',
  };
  const config = writeGatewayConfig(opts.configPath ?? GATEWAY_CONFIG, env, path.join(opts.dataDir, 'gateway'));
  const child = spawnLogged({
    name: 'gateway',
    command: LITELLM_BIN,
    // Granian rather than uvicorn: under load uvicorn let some streams wait several times longer
    // than the rest (200 clients: p99 14-19 s against p50 2-3 s); Granian serves them in turn (p99
    // 4-7 s). Its worker process is stopped with the rest of the group when the main one exits.
    args: ['--config', config.path, '--port', String(opts.port), '--host', '127.0.0.1', '--run_granian'],
    env,
    logPath: opts.logPath ?? path.join(opts.dataDir, 'logs', 'gateway.log'),
  });
  const url = `http://127.0.0.1:${opts.port}`;
  await waitReady(child, () => modelsListed(url, apiKey), 180_000);
  return Object.assign(child, { port: opts.port, url, apiKey, routes: config.routes });
}

async function modelsListed(url: string, apiKey: string): Promise<boolean> {
  const res = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(2_000) });
  return res.ok;
}

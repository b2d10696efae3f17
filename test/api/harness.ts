// The API in-process against the shared test stack (real Postgres, real Temporal): createApp on a
// free port, with this file's own task queue. `withWorker` adds the real worker for tests that need
// the session workflow to run. Each file acts as its own team (a second key resolver next to the
// admin key's), so row counts and lists are not disturbed by test files running in parallel.
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { createApp } from '../../api/app.ts';
import { adminKeyResolver } from '../../api/auth.ts';
import { loadConfig, type Config } from '../../lib/config.ts';
import { closeDb, db } from '../../lib/db.ts';
import { EventBus } from '../../lib/events.ts';
import { createLogger } from '../../lib/log.ts';
import { apiClient } from '../support/api-client.ts';
import { stopAllLocalSandboxes } from '../../activities/sandbox/local.ts';
import { startWorker, testEnv, TEST_ADMIN_KEY } from '../support/processes.ts';

export interface TestApi {
  url: string;
  app: ReturnType<typeof createApp>;
  teamId: string;
  /** The Bearer key of this file's team. */
  key: string;
  /** Acts for this file's team. */
  api: ReturnType<typeof apiClient>;
  /** Acts for team_default (the admin key): another team, as far as `api`'s resources go. */
  adminApi: ReturnType<typeof apiClient>;
  config: Config;
  temporal: Client;
  /** Raw fetch against the app (for malformed bodies, custom headers). */
  raw: (method: string, path: string, init?: { body?: string; headers?: Record<string, string> }) => Promise<{ status: number; body: any }>;
  stop: () => Promise<void>;
}

export async function startApi(name: string, opts: { withWorker?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<TestApi> {
  const t = testEnv(name, { BERTH_MAX_BODY_BYTES: '4096', ...opts.env });
  // db(), the EventBus and loadConfig() read the process environment: this test file's process is
  // ours. The in-process app logs only warnings (the worker keeps its own level: it signals readiness by log).
  Object.assign(process.env, t.env, { LOG_LEVEL: 'warn' });
  const config = loadConfig();
  const worker = opts.withWorker ? await startWorker(t) : undefined;
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const teamId = `team_${name}_${randomBytes(4).toString('hex')}`;
  const teamKey = `key_${randomBytes(16).toString('hex')}`;
  await db().team.create({ data: { id: teamId, name: `api tests: ${name}` } });
  const eventBus = new EventBus();
  await eventBus.start();
  const app = createApp({
    config,
    temporal,
    eventBus,
    log: createLogger('api-test'),
    keyResolvers: [adminKeyResolver(config.BERTH_ADMIN_API_KEY), async (key) => (key === teamKey ? teamId : undefined)],
  });
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const raw: TestApi['raw'] = async (method, path, init = {}) => {
    const res = await fetch(url + path, {
      method,
      body: init.body,
      headers: { authorization: `Bearer ${teamKey}`, ...init.headers },
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  return {
    url,
    app,
    teamId,
    key: teamKey,
    api: apiClient(url, teamKey),
    adminApi: apiClient(url, TEST_ADMIN_KEY),
    config,
    temporal,
    raw,
    stop: async () => {
      if ('closeAllConnections' in server) server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await worker?.stop();
      await stopAllLocalSandboxes(t.dataDir);
      await eventBus.stop();
      await connection.close();
      await closeDb();
    },
  };
}

/** The team's rows in every table a request could write. */
export async function rowCounts(teamId: string) {
  const ofTeam = { session: { teamId } };
  const [agents, sessions, messages, events, keys] = await Promise.all([
    db().agent.count({ where: { teamId } }),
    db().session.count({ where: { teamId } }),
    db().message.count({ where: ofTeam }),
    db().sessionEvent.count({ where: ofTeam }),
    db().idempotencyKey.count({ where: { teamId } }),
  ]);
  return { agents, sessions, messages, events, keys };
}

// The web process: the HTTP API under /v1 and the dashboard beside it. `npm run web` runs it alone.
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { createApp } from '../api/app.ts';
import { abandonedAfterMs, sweepIdempotencyKeys } from '../api/idempotency.ts';
import { failUnstartedSessions } from '../api/unstarted-sessions.ts';
import { mountDashboard } from '../dashboard/mount.ts';
import { loadConfig } from '../lib/config.ts';
import { closeDb } from '../lib/db.ts';
import { EventBus } from '../lib/events.ts';
import { createLogger } from '../lib/log.ts';
import { VaultKeyError, keyringFromEnv } from '../lib/vault.ts';

/** After SIGTERM, open requests (?wait=true; event streams end at once) get this long before their connections are cut. */
const SHUTDOWN_GRACE_MS = 5_000;

const config = loadConfig();
const log = createLogger('web');
if (!config.BERTH_ADMIN_API_KEY) log.warn('BERTH_ADMIN_API_KEY is not set: every /v1 request will be answered 401');
try {
  keyringFromEnv(process.env); // the credentials API seals values with it: no key, no start
} catch (err) {
  if (!(err instanceof VaultKeyError)) throw err;
  log.error(err.message);
  process.exit(78);
}

const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS }).catch((err: unknown) => {
  log.error('cannot reach Temporal', { address: config.TEMPORAL_ADDRESS, err });
  process.exit(1);
});
const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
const eventBus = new EventBus(log);
await eventBus.start();

const closing = new AbortController();
const app = createApp({ config, temporal, eventBus, log, closing: closing.signal });
await mountDashboard(app, log);

// Now and every hour (every web process may run them): idempotency keys past their time are deleted,
// and sessions whose creating request died before their workflow started are marked failed (only
// those older than any such request takes).
const sweep = () => {
  void sweepIdempotencyKeys()
    .then((count) => count > 0 && log.info('expired idempotency keys deleted', { count }))
    .catch((err: unknown) => log.warn('idempotency key sweep failed', { err }));
  void failUnstartedSessions(temporal, new Date(Date.now() - abandonedAfterMs()))
    .then((sessions) => sessions.length > 0 && log.info('marked failed: sessions whose workflow never started', { sessions }))
    .catch((err: unknown) => log.warn('sweep for sessions whose workflow never started failed', { err }));
};
sweep();
const sweeper = setInterval(sweep, 60 * 60 * 1000).unref();
const server = serve({ fetch: app.fetch, hostname: config.BERTH_HOST, port: config.PORT }, (info) => {
  log.info('web ready', { url: `http://${config.BERTH_HOST}:${info.port}`, temporal: config.TEMPORAL_ADDRESS });
}) as Server;
server.on('error', (err) => {
  log.error('cannot serve', { host: config.BERTH_HOST, port: config.PORT, err });
  process.exit(1);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log.info('shutting down', { signal: sig });
    clearInterval(sweeper);
    closing.abort();
    const cut = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    // A connection whose request ends meanwhile (an event stream, a ?wait=true answer) is closed once
    // idle, rather than when the client's keep-alive gives up on it (undici: after 4 s).
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearTimeout(cut);
      clearInterval(idle);
      void Promise.allSettled([eventBus.stop(), connection.close(), closeDb()]).then(() => {
        log.info('web stopped');
        process.exit(0);
      });
    });
    server.closeIdleConnections();
  });
}

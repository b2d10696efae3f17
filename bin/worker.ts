// The Temporal worker: runs session workflows and their activities. `npm run worker` runs it alone.
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.ts';
import { closedSessionSweep } from '../activities/sandbox/closed-sessions.ts';
import { sandboxProvider } from '../activities/sandbox/index.ts';
import { reportStoppedSandboxes } from '../activities/sandbox/report-stopped.ts';
import { loadConfig } from '../lib/config.ts';
import { closeDb } from '../lib/db.ts';
import { createLogger } from '../lib/log.ts';

const config = loadConfig();
const log = createLogger('worker');
// The SDK logs at our level too, so `LOG_LEVEL=warn` quiets its state-change chatter. Its metrics
// follow Prometheus's conventions (seconds, unit and _total suffixes), as the Go SDK's do.
const metricsAddress = config.BERTH_WORKER_METRICS_ADDRESS;
try {
  Runtime.install({
    logger: new DefaultLogger(config.LOG_LEVEL.toUpperCase() as 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'),
    ...(metricsAddress && {
      telemetryOptions: {
        metrics: { prometheus: { bindAddress: metricsAddress, useSecondsForDurations: true, unitSuffix: true, countersTotalSuffix: true } },
      },
    }),
  });
} catch (err) {
  // With our options it fails when the metrics address cannot be bound (in use, or not this host's).
  log.error(`cannot serve metrics on BERTH_WORKER_METRICS_ADDRESS=${metricsAddress}`, { err });
  process.exit(1);
}
if (!config.LITELLM_GATEWAY_URL) {
  log.error('LITELLM_GATEWAY_URL is not set: the worker relays every model call to a LiteLLM gateway (npm start sets it)');
  process.exit(78);
}

const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
const sandboxes = await sandboxProvider(config);
const worker = await Worker.create({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  taskQueue: config.BERTH_TASK_QUEUE,
  workflowsPath: fileURLToPath(new URL('../workflows/session.ts', import.meta.url)),
  activities: createActivities({ config, sandboxes }),
  maxConcurrentActivityTaskExecutions: config.BERTH_WORKER_CONCURRENCY,
  maxConcurrentWorkflowTaskExecutions: 50,
  // A worker that dies holds its sessions' workflow tasks on its sticky queue; hand them on quickly.
  stickyQueueScheduleToStartTimeout: '3s',
  // An abort reaches a running activity with its next heartbeat: send them at least every second.
  maxHeartbeatThrottleInterval: 1000,
  // A deploy lets running steps finish for this long; a model step still streaming is then retried elsewhere.
  shutdownGraceTime: config.BERTH_WORKER_SHUTDOWN_GRACE_S * 1000,
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log.info('shutting down', { signal: sig });
    worker.shutdown();
  });
}
log.info('worker ready', {
  taskQueue: config.BERTH_TASK_QUEUE,
  temporal: config.TEMPORAL_ADDRESS,
  ...(metricsAddress && { metrics: `http://${metricsAddress}/metrics` }),
});
const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
// Only local sandboxes stop behind their workflows' backs (see report-stopped.ts); a cluster keeps its
// own across worker restarts, and checking every session's at each worker start would load its API.
if (config.BERTH_SANDBOX_BACKEND === 'local') {
  reportStoppedSandboxes(client, sandboxes).then(
    (sessions) => sessions.length > 0 && log.info('told sessions their sandbox had stopped', { sessions: sessions.length }),
    (err: unknown) => log.warn('could not check for sessions whose sandbox stopped', { err }),
  );
}
// Each sweep starts BERTH_CLOSED_SESSION_SWEEP_S after the last one ended.
const settleClosedSessions = closedSessionSweep(client, sandboxes, config.BERTH_TASK_QUEUE);
const sweep = (): void => {
  settleClosedSessions()
    .then(
      ({ settled, failed }) => {
        if (settled.length > 0) log.info('settled sessions whose workflow closed without ending them', { sessions: settled });
        for (const { session, err } of failed) log.warn('could not settle a session whose workflow closed', { session, err });
      },
      (err: unknown) => log.warn('sweep for sessions whose workflow closed failed', { err }),
    )
    .finally(() => setTimeout(sweep, config.BERTH_CLOSED_SESSION_SWEEP_S * 1000).unref());
};
sweep();
await worker.run();
await connection.close();
await closeDb();
log.info('worker stopped');

// Liveness and readiness probes (no auth): /healthz says the process is up; /readyz checks that
// Postgres and Temporal answer within a couple of seconds.
import { z } from '@hono/zod-openapi';
import { db } from '../../lib/db.ts';
import type { ApiDeps } from '../context.ts';
import { createRouter } from '../context.ts';
import { json, route } from '../openapi.ts';

const CHECK_TIMEOUT_MS = 2_000;
const Ready = z.object({ status: z.enum(['ok', 'unavailable']), checks: z.object({ database: z.string(), temporal: z.string() }) }).openapi('Readiness');

const healthz = route({
  method: 'get', path: '/healthz', tags: ['health'], summary: 'The process is up', security: [],
  responses: { 200: json(z.object({ status: z.literal('ok') }), 'Up') },
});
const readyz = route({
  method: 'get', path: '/readyz', tags: ['health'], summary: 'Postgres and Temporal are reachable', security: [],
  responses: { 200: json(Ready, 'Ready'), 503: json(Ready, 'A dependency is unreachable') },
});

async function check(probe: () => Promise<unknown>): Promise<string> {
  try {
    await Promise.race([probe(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS).unref())]);
    return 'ok';
  } catch {
    return 'unreachable';
  }
}

export function healthRoutes({ temporal }: ApiDeps) {
  const app = createRouter();
  app.openapi(healthz, (c) => c.json({ status: 'ok' as const }, 200));
  app.openapi(readyz, async (c) => {
    const [database, temporalState] = await Promise.all([
      check(() => db().$queryRaw`SELECT 1`),
      check(() => temporal.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () => temporal.workflowService.getSystemInfo({}))),
    ]);
    const ok = database === 'ok' && temporalState === 'ok';
    const body = { status: ok ? ('ok' as const) : ('unavailable' as const), checks: { database, temporal: temporalState } };
    return ok ? c.json(body, 200) : c.json(body, 503);
  });
  return app;
}

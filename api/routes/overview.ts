// The dashboard's overview in one call: what is running now and what went wrong lately, for the
// caller's team only.
import { z } from '@hono/zod-openapi';
import { db } from '../../lib/db.ts';
import { createRouter } from '../context.ts';
import { errors, json, route } from '../openapi.ts';

const LIVE_SANDBOX_STATES = ['starting', 'running', 'recreating'];
const TURN_ENDS = ['turn.completed', 'turn.failed', 'turn.aborted'];
const RECENT_FAILURES = 10;
const HOUR_MS = 3_600_000;

const Failure = z.object({
  session_id: z.string(),
  agent_id: z.string(),
  turn: z.number().int().nullable().openapi({ description: 'The failed turn; null when the session itself failed' }),
  error: z.string(),
  at: z.string().openapi({ format: 'date-time' }),
});
const Overview = z
  .object({
    active_sessions: z.number().int(),
    hibernated_sessions: z.number().int(),
    live_sandboxes: z.number().int().openapi({ description: 'Sessions whose sandbox is starting, running or recreating' }),
    turns_last_hour: z.number().int().openapi({ description: 'Turns that ended (completed, failed or aborted) in the last hour' }),
    failed_turns_last_hour: z.number().int(),
    recent_failures: z.array(Failure).openapi({ description: `The ${RECENT_FAILURES} newest failed turns and failed sessions` }),
  })
  .openapi('Overview');

const get = route({
  method: 'get', path: '/overview', tags: ['overview'], summary: 'Counts and recent failures for a dashboard',
  responses: { 200: json(Overview, 'The overview'), ...errors() },
});

const errorText = (data: unknown) => {
  const why = (data as { error?: unknown } | null)?.error;
  return typeof why === 'string' ? why : JSON.stringify(why ?? 'unknown error');
};

export function overviewRoutes() {
  const app = createRouter();
  app.openapi(get, async (c) => {
    const teamId = c.var.teamId;
    const open = { teamId, status: { in: ['active', 'hibernated'] } };
    const hourAgo = new Date(Date.now() - HOUR_MS);
    const [active, hibernated, sandboxes, turns, failedTurns, failedEvents, failedSessions] = await Promise.all([
      db().session.count({ where: { teamId, status: 'active' } }),
      db().session.count({ where: { teamId, status: 'hibernated' } }),
      db().session.count({ where: { ...open, sandboxState: { in: LIVE_SANDBOX_STATES } } }),
      db().sessionEvent.count({ where: { type: { in: TURN_ENDS }, createdAt: { gte: hourAgo }, session: { teamId } } }),
      db().sessionEvent.count({ where: { type: 'turn.failed', createdAt: { gte: hourAgo }, session: { teamId } } }),
      db().sessionEvent.findMany({
        where: { type: 'turn.failed', session: { teamId } },
        orderBy: { createdAt: 'desc' },
        take: RECENT_FAILURES,
        include: { session: { select: { agentId: true } } },
      }),
      db().session.findMany({ where: { teamId, status: 'failed' }, orderBy: { updatedAt: 'desc' }, take: RECENT_FAILURES }),
    ]);
    const failures = [
      ...failedEvents.map((e) => ({
        session_id: e.sessionId,
        agent_id: e.session.agentId,
        turn: typeof (e.data as { turn?: unknown }).turn === 'number' ? ((e.data as { turn: number }).turn) : null,
        error: errorText(e.data),
        at: e.createdAt.toISOString(),
      })),
      ...failedSessions.map((s) => ({ session_id: s.id, agent_id: s.agentId, turn: null, error: 'the session failed', at: s.updatedAt.toISOString() })),
    ]
      .sort((a, b) => b.at.localeCompare(a.at))
      .slice(0, RECENT_FAILURES);
    return c.json(
      {
        active_sessions: active,
        hibernated_sessions: hibernated,
        live_sandboxes: sandboxes,
        turns_last_hour: turns,
        failed_turns_last_hour: failedTurns,
        recent_failures: failures,
      },
      200,
    );
  });
  return app;
}

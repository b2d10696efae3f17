// Sessions: each one is a Temporal workflow (id = session id) started here, with a row in Postgres
// that the workflow's activities keep current (status, sandbox state).
import { db } from '../../lib/db.ts';
import type { ApiDeps } from '../context.ts';
import { createRouter } from '../context.ts';
import { ApiError, sessionEnded } from '../errors.ts';
import { idempotent, insertOnce } from '../idempotency.ts';
import { errors, json, jsonBody, route } from '../openapi.ts';
import { newestFirst, newestFirstAfter, pageOf } from '../pagination.ts';
import { AbortAccepted, AbortBody, IdParam, IdempotencyHeaders, Session, SessionCreate, SessionCreated, SessionListQuery, SessionPage } from '../schemas.ts';
import { findSession, isClosed, sessionJson } from '../sessions-data.ts';
import { abortSession, deadline, endSession, sessionInput, startSession, workflowStarted } from '../temporal.ts';

const tags = ['sessions'];

const create = route({
  method: 'post', path: '/sessions', tags, summary: 'Start a session (optionally with its first message)',
  request: { body: jsonBody(SessionCreate), headers: IdempotencyHeaders },
  responses: { 201: json(SessionCreated, 'The session; `message` is set when one was sent'), ...errors(413, 422) },
});
const list = route({
  method: 'get', path: '/sessions', tags, summary: 'List sessions, newest first',
  request: { query: SessionListQuery },
  responses: { 200: json(SessionPage, 'A page of sessions'), ...errors() },
});
const get = route({
  method: 'get', path: '/sessions/{id}', tags, summary: 'Get a session (status, sandbox state, usage)',
  request: { params: IdParam },
  responses: { 200: json(Session, 'The session'), ...errors(404) },
});
const end = route({
  method: 'delete', path: '/sessions/{id}', tags, summary: 'End a session and remove its sandbox (idempotent)',
  request: { params: IdParam, headers: IdempotencyHeaders },
  responses: { 200: json(Session, 'The ended session'), ...errors(404, 409, 422) },
});
const abort = route({
  method: 'post', path: '/sessions/{id}/abort', tags, summary: "Abort the running turn (queued messages stay)",
  request: { params: IdParam, body: jsonBody(AbortBody, false), headers: IdempotencyHeaders },
  responses: { 202: json(AbortAccepted, 'Abort requested'), ...errors(404, 409, 413, 422) },
});

export function sessionRoutes({ config, temporal }: ApiDeps) {
  const app = createRouter();

  /** After a failed start: no row for a workflow that never started; a failed one when we cannot tell. */
  async function settleFailedStart(id: string): Promise<void> {
    const started = await temporal.withDeadline(deadline(config), () => workflowStarted(temporal, id)).catch(() => undefined);
    if (started === false) await db().session.delete({ where: { id } });
    if (started === undefined) await db().session.update({ where: { id }, data: { status: 'failed' } });
  }

  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const teamId = c.var.teamId;
    const updateId = c.req.valid('header')['idempotency-key'];
    const created = await idempotent(c, body, 201, async (ids) => {
      const agent = await db().agent.findFirst({ where: { id: body.agent_id, teamId, deletedAt: null } });
      if (!agent) {
        const message = `agent ${body.agent_id} does not exist or was deleted`;
        throw new ApiError(422, 'agent_unusable', message, [{ path: 'agent_id', message }]);
      }
      const id = ids('ses');
      const row = await insertOnce(
        () => db().session.create({ data: { id, teamId, agentId: agent.id, taskQueue: config.BERTH_TASK_QUEUE } }),
        () => db().session.findFirst({ where: { id, teamId } }),
      );
      const first = body.message === undefined ? undefined : { content: body.message, updateId };
      const input = sessionInput(config, row.id, agent);
      const accepted = await startSession(temporal, config, input, first).catch(async (err: unknown) => {
        await settleFailedStart(row.id);
        throw err;
      });
      return { ...sessionJson(config, row), message: accepted && { message_id: accepted.messageId, seq: accepted.seq, turn: accepted.turn } };
    });
    return c.json(created, 201);
  });

  app.openapi(list, async (c) => {
    const { limit, cursor, status, agent_id } = c.req.valid('query');
    const rows = await db().session.findMany({
      where: { teamId: c.var.teamId, ...(status && { status }), ...(agent_id && { agentId: { in: agent_id.split(',') } }), ...newestFirstAfter(cursor) },
      orderBy: newestFirst,
      take: limit + 1,
    });
    const page = pageOf(rows, limit);
    return c.json({ data: page.rows.map((r) => sessionJson(config, r)), next_cursor: page.next_cursor }, 200);
  });

  app.openapi(get, async (c) => {
    const { id } = c.req.valid('param');
    return c.json(sessionJson(config, await findSession(c.var.teamId, id)), 200);
  });

  app.openapi(end, async (c) => {
    const { id } = c.req.valid('param');
    const ended = await idempotent(c, null, 200, async () => {
      const row = await findSession(c.var.teamId, id);
      // The workflow marks its row ended before the update returns; a workflow that is gone cannot, so we
      // do, and a worker's sweep removes the sandbox (activities/sandbox/closed-sessions.ts).
      if (row.status !== 'ended' && !(await endSession(temporal, config, id))) {
        await db().session.updateMany({ where: { id, status: { not: 'ended' } }, data: { status: 'ended', endedAt: new Date() } });
      }
      return sessionJson(config, await findSession(c.var.teamId, id));
    });
    return c.json(ended, 200);
  });

  app.openapi(abort, async (c) => {
    const { id } = c.req.valid('param');
    const { reason } = c.req.valid('json');
    const result = await idempotent(c, { reason }, 202, async () => {
      const row = await findSession(c.var.teamId, id);
      if (isClosed(row) || !(await abortSession(temporal, id, reason))) throw sessionEnded(id);
      return { session_id: id, abort_requested: true as const };
    });
    return c.json(result, 202);
  });

  return app;
}

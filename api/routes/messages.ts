// Messages: a POST is a sendMessage update on the session workflow (the Idempotency-Key becomes the
// update id, so a retry is not a second message); ?wait=true also waits for the turn's end event.
// GET lists the transcript from Postgres in seq order.
import { WorkflowNotFoundError } from '@temporalio/common';
import { db } from '../../lib/db.ts';
import { turnEndKey } from '../../lib/events.ts';
import type { Message as MessageRow } from '../../lib/generated/prisma/client.ts';
import type { ApiDeps } from '../context.ts';
import { createRouter } from '../context.ts';
import { ApiError } from '../errors.ts';
import { followEvents } from '../follow.ts';
import { errors, json, jsonBody, route } from '../openapi.ts';
import { encodeCursor, seqAfter } from '../pagination.ts';
import { IdParam, IdempotencyHeaders, MessageAccepted, MessageCreate, MessageCreateQuery, MessageListQuery, MessagePage, TurnResult, type MessageJson } from '../schemas.ts';
import type { z } from '@hono/zod-openapi';
import { assertOpen, assertTakesMessages, findSession } from '../sessions-data.ts';
import { sendMessage } from '../temporal.ts';

const tags = ['messages'];
const TURN_END = new Set(['turn.completed', 'turn.failed', 'turn.aborted']);

const post = route({
  method: 'post', path: '/sessions/{id}/messages', tags, summary: 'Send a user message',
  request: { params: IdParam, query: MessageCreateQuery, body: jsonBody(MessageCreate), headers: IdempotencyHeaders },
  responses: {
    200: json(TurnResult, 'With ?wait=true: the turn ended'),
    202: json(MessageAccepted, 'Queued (or, with ?wait=true, timeout_s passed before the turn ended)'),
    ...errors(404, 409, 413),
  },
});
const list = route({
  method: 'get', path: '/sessions/{id}/messages', tags, summary: 'The transcript, in seq order',
  request: { params: IdParam, query: MessageListQuery },
  responses: { 200: json(MessagePage, 'A page of messages'), ...errors(404) },
});

function turnResult(type: string, data: Record<string, unknown>) {
  const outcome = type.slice('turn.'.length) as z.infer<typeof TurnResult>['outcome'];
  const text = outcome === 'completed' && typeof data.text === 'string' ? data.text : null;
  const why = data.error ?? data.reason;
  return { outcome, text, error: outcome === 'completed' ? null : typeof why === 'string' ? why : JSON.stringify(why ?? null) };
}

function messageJson(m: MessageRow): MessageJson {
  return {
    id: m.id,
    seq: m.seq,
    turn: m.turn,
    role: m.role as MessageJson['role'],
    content: m.content,
    tool_calls: m.toolCalls,
    tool_call_id: m.toolCallId,
    tool_name: m.toolName,
    created_at: m.createdAt.toISOString(),
  };
}

export function messageRoutes({ config, temporal, eventBus }: ApiDeps) {
  const app = createRouter();

  app.openapi(post, async (c) => {
    const { id } = c.req.valid('param');
    const { wait, timeout_s } = c.req.valid('query');
    // Waiting needs the session's last event seq as it is now (the turn's end comes after it).
    const row = wait === 'true' ? await findSession(c.var.teamId, id) : undefined;
    if (row) assertOpen(row);
    else await assertTakesMessages(c.var.teamId, id);
    const key = c.req.valid('header')['idempotency-key'];
    const sent = await sendMessage(temporal, config, id, c.req.valid('json').content, key).catch(
      async (err: unknown) => {
        // The workflow is gone (ended, failed or terminated): say so rather than 500.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        const now = await findSession(c.var.teamId, id);
        assertOpen(now);
        throw new ApiError(409, 'session_not_running', `session ${id} is ${now.status} but its workflow is not running`);
      },
    );
    const accepted = { message_id: sent.messageId, seq: sent.seq, turn: sent.turn };
    if (!row) return c.json(accepted, 202);

    // A retry (same Idempotency-Key) may be for a turn that ended already, before the row's last seq.
    const retried = key !== undefined ? await earlierTurnEnd(id, sent.turn) : undefined;
    const result = retried ?? (await waitForTurnEnd(id, Number(row.lastEventSeq), sent.turn, timeout_s * 1000, c.req.raw.signal));
    return result ? c.json({ ...accepted, ...result }, 200) : c.json(accepted, 202);
  });

  /** The turn's end event (scanning from a seq before the message was sent), or null on timeout. */
  async function waitForTurnEnd(sessionId: string, afterSeq: number, turn: number, timeoutMs: number, clientGone: AbortSignal) {
    const signal = AbortSignal.any([clientGone, AbortSignal.timeout(timeoutMs)]);
    for await (const batch of followEvents(eventBus, sessionId, afterSeq, signal, timeoutMs)) {
      const end = batch.find((e) => TURN_END.has(e.type) && e.data.turn === turn);
      if (end) return turnResult(end.type, end.data as Record<string, unknown>);
    }
    return null;
  }

  async function earlierTurnEnd(sessionId: string, turn: number) {
    const end = await db().sessionEvent.findUnique({ where: { sessionId_key: { sessionId, key: turnEndKey(turn) } } });
    return end ? turnResult(end.type, end.data as Record<string, unknown>) : undefined;
  }

  app.openapi(list, async (c) => {
    const { id } = c.req.valid('param');
    const { limit, cursor, after_seq } = c.req.valid('query');
    await findSession(c.var.teamId, id);
    const after = cursor !== undefined ? seqAfter(cursor) : (after_seq ?? -1);
    const rows = await db().message.findMany({ where: { sessionId: id, seq: { gt: after } }, orderBy: { seq: 'asc' }, take: limit + 1 });
    const page = rows.slice(0, limit);
    const next = rows.length > limit ? encodeCursor(page[page.length - 1]!.seq) : null;
    return c.json({ data: page.map(messageJson), next_cursor: next }, 200);
  });

  return app;
}

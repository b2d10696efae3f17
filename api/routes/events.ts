// Server-sent events: every event of a session as `id: <seq>`, `event: <type>`, `data: <json>`.
// Resumable: a reconnecting client sends Last-Event-ID (or ?after=) and gets only what came later.
import { z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { ApiDeps } from '../context.ts';
import { createRouter } from '../context.ts';
import { ApiError } from '../errors.ts';
import { followEvents } from '../follow.ts';
import { errors, route } from '../openapi.ts';
import { EventsQuery, IdParam } from '../schemas.ts';
import { findSession, isClosed } from '../sessions-data.ts';

const KEEP_ALIVE_MS = 15_000;

const stream = route({
  method: 'get', path: '/sessions/{id}/events', tags: ['events'],
  summary: 'Event stream (SSE), resumable with Last-Event-ID',
  description:
    'Events: message.created, message.delta, tool.started, tool.output, tool.finished, turn.completed, turn.failed, ' +
    'turn.aborted, session.status, step.retry. Each carries `id: <seq>`; the stream ends after session.status "ended" ' +
    '(for an ended session: once the stored events are sent). A comment line every 15 s keeps it alive.',
  request: {
    params: IdParam,
    query: EventsQuery,
    headers: z.object({ 'last-event-id': z.string().regex(/^\d+$/, 'must be an event seq').optional() }),
  },
  responses: {
    200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } },
    ...errors(404),
  },
});

export function eventRoutes({ eventBus, log, closing }: ApiDeps) {
  const app = createRouter();

  app.openapi(stream, async (c) => {
    const { id } = c.req.valid('param');
    const lastEventId = c.req.valid('header')['last-event-id'];
    const after = lastEventId !== undefined ? Number(lastEventId) : (c.req.valid('query').after ?? 0);
    if (!Number.isSafeInteger(after)) throw new ApiError(400, 'invalid_request', 'invalid Last-Event-ID', [{ path: 'last-event-id', message: 'too large' }]);
    // An ended session gets what is stored, then the stream closes: nothing more will come.
    const replayOnly = isClosed(await findSession(c.var.teamId, id));

    return streamSSE(c, async (sse) => {
      const left = new AbortController();
      sse.onAbort(() => left.abort());
      // A shutting-down process ends its streams at once, cleanly: the client resumes with Last-Event-ID
      // (at another web process) instead of hanging on until the shutdown's grace cuts the connection.
      const gone = AbortSignal.any([left.signal, c.req.raw.signal, ...(closing ? [closing] : [])]);
      try {
        for await (const batch of followEvents(eventBus, id, after, gone, KEEP_ALIVE_MS, replayOnly)) {
          if (batch.length === 0) await sse.write(': keep-alive\n\n');
          for (const e of batch) {
            await sse.writeSSE({ id: String(e.seq), event: e.type, data: JSON.stringify(e.data) });
            if (e.type === 'session.status' && e.data.status === 'ended') return;
          }
        }
      } catch (err) {
        if (!gone.aborted) log.warn('event stream failed', { sessionId: id, err });
      }
    });
  });

  return app;
}

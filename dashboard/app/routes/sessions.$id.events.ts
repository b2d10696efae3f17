// The session's SSE stream for the browser, same origin: the key cookie authorises it here and the
// request goes on to the API with the key as a Bearer token. Last-Event-ID (EventSource's own
// reconnect) and ?after= (a fresh EventSource after a failed one) are passed through, so a
// reconnect resumes where the page stopped. The browser going away aborts the upstream request.
import type { LoaderFunctionArgs } from '@remix-run/node';
import { rawApi } from '../lib/api.server.ts';
import { readKey } from '../lib/auth.server.ts';
import { isId } from '../lib/same-origin.server.ts';

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const key = await readKey(request);
  if (!key) return Response.json({ error: { message: 'sign in first' } }, { status: 401 });
  if (!isId(params.id)) return Response.json({ error: { message: 'no such session' } }, { status: 404 });
  const after = new URL(request.url).searchParams.get('after');
  const lastEventId = request.headers.get('last-event-id');
  const query = after && /^\d+$/.test(after) ? `?after=${after}` : '';
  const upstream = await rawApi(context, key, `/v1/sessions/${params.id}/events${query}`, {
    headers: lastEventId ? { 'last-event-id': lastEventId } : {},
    signal: request.signal,
  });
  return new Response(upstream.body, {
    status: upstream.status,
    headers: {
      'content-type': upstream.headers.get('content-type') ?? 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    },
  });
}

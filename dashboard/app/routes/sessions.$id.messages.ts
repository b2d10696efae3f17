// Sends a user message from the session page's composer (a JSON POST from the page, so several can
// be in flight while a turn runs; the workflow queues them). The page's Idempotency-Key makes a
// retried send one message.
import type { ActionFunctionArgs } from '@remix-run/node';
import { rawApi } from '../lib/api.server.ts';
import { readKey } from '../lib/auth.server.ts';
import { assertSameOrigin, isId } from '../lib/same-origin.server.ts';

export async function action({ request, context, params }: ActionFunctionArgs) {
  const refused = assertSameOrigin(request);
  if (refused) return refused;
  const key = await readKey(request);
  if (!key) return Response.json({ error: { message: 'Your sign-in expired. Reload the page and sign in again.' } }, { status: 401 });
  if (!isId(params.id)) return Response.json({ error: { message: 'no such session' } }, { status: 404 });
  const body = (await request.json().catch(() => null)) as { content?: unknown; idempotency_key?: unknown } | null;
  if (typeof body?.content !== 'string') return Response.json({ error: { message: 'content must be a string' } }, { status: 400 });
  const idem = typeof body.idempotency_key === 'string' ? body.idempotency_key.slice(0, 255) : undefined;
  const res = await rawApi(context, key, `/v1/sessions/${params.id}/messages`, {
    method: 'POST',
    body: { content: body.content },
    headers: idem ? { 'idempotency-key': idem } : {},
  });
  return new Response(res.body, { status: res.status, headers: { 'content-type': 'application/json' } });
}

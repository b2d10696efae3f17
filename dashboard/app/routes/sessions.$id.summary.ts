// The session's current status, sandbox state and usage as JSON, for the session page to refresh
// its details after events without reloading its data (a failed refresh keeps what it shows).
import type { LoaderFunctionArgs } from '@remix-run/node';
import { rawApi } from '../lib/api.server.ts';
import { readKey } from '../lib/auth.server.ts';
import { isId } from '../lib/same-origin.server.ts';

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const key = await readKey(request);
  if (!key) return Response.json({ error: { message: 'sign in first' } }, { status: 401 });
  if (!isId(params.id)) return Response.json({ error: { message: 'no such session' } }, { status: 404 });
  const res = await rawApi(context, key, `/v1/sessions/${params.id}`);
  return new Response(res.body, { status: res.status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
}

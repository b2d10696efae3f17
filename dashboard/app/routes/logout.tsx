// Sign out: forget the key cookie.
import type { ActionFunctionArgs } from '@remix-run/node';
import { redirect } from '@remix-run/node';
import { clearedKeyCookieHeader } from '../lib/auth.server.ts';

export async function action({ request }: ActionFunctionArgs) {
  return redirect('/login', { headers: { 'set-cookie': await clearedKeyCookieHeader(request) } });
}

export async function loader() {
  return redirect('/');
}

// The signed-in user's API key lives in an HttpOnly, SameSite=Lax cookie (Secure over https), never
// in the page's JavaScript. Every loader and action sends it to the API as a Bearer key.
import { createCookie, redirect } from '@remix-run/node';

const THIRTY_DAYS_S = 30 * 24 * 3600;
const keyCookie = createCookie('berth_key', { httpOnly: true, sameSite: 'lax', path: '/', maxAge: THIRTY_DAYS_S });

/** Served over https directly, or behind a proxy that terminated TLS. */
const isHttps = (request: Request) =>
  new URL(request.url).protocol === 'https:' || request.headers.get('x-forwarded-proto') === 'https';

export async function readKey(request: Request): Promise<string | undefined> {
  const value: unknown = await keyCookie.parse(request.headers.get('cookie'));
  return typeof value === 'string' && value ? value : undefined;
}

/** Where to come back to after signing in: the page asked for, if it is one of ours. */
export function safeNext(next: string | null | undefined): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export async function requireKey(request: Request): Promise<string> {
  const key = await readKey(request);
  if (!key) throw redirect(loginUrl(request));
  return key;
}

export function loginUrl(request: Request, reason?: 'expired'): string {
  const url = new URL(request.url);
  const params = new URLSearchParams({ next: url.pathname + url.search });
  if (reason) params.set('reason', reason);
  return `/login?${params}`;
}

export const keyCookieHeader = (request: Request, key: string) => keyCookie.serialize(key, { secure: isHttps(request) });
export const clearedKeyCookieHeader = (request: Request) => keyCookie.serialize('', { maxAge: 0, secure: isHttps(request) });

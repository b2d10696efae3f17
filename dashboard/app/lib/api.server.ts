// Calls to Berth's HTTP API with the signed-in user's key. Mounted in the web process, requests go
// straight to the Hono app in memory (context.berthApi); under `npm run dev` they go over HTTP to
// BERTH_API_URL (default http://127.0.0.1:$PORT). The dashboard never touches the database.
import { data, redirect, type AppLoadContext } from '@remix-run/node';
import { clearedKeyCookieHeader, loginUrl, requireKey } from './auth.server.ts';
import { sentence } from './format.ts';

declare module '@remix-run/node' {
  interface AppLoadContext {
    berthApi?: (request: Request) => Promise<Response>;
  }
  // Loaders return plain data (single fetch, enabled in vite.config.ts).
  interface Future {
    v3_singleFetch: true;
  }
}

export interface FieldError {
  path: string;
  message: string;
}

/** An API error answer: {"error":{"code","message","details"}}. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: FieldError[] = [],
  ) {
    super(message);
  }
}

const apiBase = () => process.env.BERTH_API_URL ?? `http://127.0.0.1:${process.env.PORT ?? '3000'}`;

export interface CallOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** The raw answer of the API for `path` (e.g. /v1/agents), sent with `key`. */
export async function rawApi(context: AppLoadContext, key: string, path: string, opts: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, ...opts.headers };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const request = new Request(new URL(path, apiBase()), {
    method: opts.method ?? 'GET',
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
  return context.berthApi ? context.berthApi(request) : fetch(request);
}

interface Args {
  request: Request;
  context: AppLoadContext;
}

/** JSON from the API; a 401 sends the user to sign in again, any other error throws ApiProblem. */
export async function api<T>({ request, context }: Args, path: string, opts: CallOptions = {}): Promise<T> {
  const key = await requireKey(request);
  let res: Response;
  try {
    res = await rawApi(context, key, path, opts);
  } catch {
    throw new ApiProblem(503, 'unreachable', 'The Berth API did not answer. Is the web process running?');
  }
  if (res.status === 401) {
    throw redirect(loginUrl(request, 'expired'), { headers: { 'set-cookie': await clearedKeyCookieHeader(request) } });
  }
  const body = (await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string; details?: FieldError[] } } | undefined;
  if (!res.ok) {
    const e = body?.error;
    throw new ApiProblem(res.status, e?.code ?? 'error', e?.message ?? `the API answered ${res.status}`, e?.details ?? []);
  }
  return body as T;
}

// Actions answer a rejected form with 200 and the message to show beside it (a 4xx would also put
// a resource-load error in the browser's console); loaders throw, so the route's ErrorBoundary shows it.

/** For loaders: an API error becomes an error response the route's ErrorBoundary shows. */
export async function load<T>(args: Args, path: string): Promise<T> {
  try {
    return await api<T>(args, path);
  } catch (err) {
    if (err instanceof ApiProblem) throw data({ message: sentence(err.message) }, { status: err.status });
    throw err;
  }
}

/** For optional panels: the JSON, or undefined when the API answers 404 (the feature does not exist). */
export async function loadOptional<T>(args: Args, path: string): Promise<T | undefined> {
  try {
    return await api<T>(args, path);
  } catch (err) {
    if (err instanceof ApiProblem && err.status === 404) return undefined;
    throw err;
  }
}

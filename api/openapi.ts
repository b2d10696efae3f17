// Helpers for route definitions: the route itself (strict query parameters), the error responses
// each route documents, and JSON bodies.
import { createRoute, z, type RouteConfig } from '@hono/zod-openapi';
import { ErrorSchema } from './schemas.ts';

const NO_QUERY = z.object({}).strict();

/**
 * createRoute with strict query parameters, as request bodies are: an unknown or misspelt one
 * (`?wiat=true`) is a 400 naming it, never silently ignored. A route that declares none takes none.
 * Every route documents 400 and 503 (any of them can find the database down).
 */
export function route<P extends string, R extends Omit<RouteConfig, 'path'> & { path: P }>(config: R): ReturnType<typeof createRoute<P, R>> {
  const query = config.request?.query;
  const strict = query instanceof z.ZodObject ? query.strict() : (query ?? NO_QUERY);
  return createRoute({ ...config, request: { ...config.request, query: strict }, responses: { 400: errorResponse(400), 503: errorResponse(503), ...config.responses } });
}

const errorDescriptions = {
  400: 'Invalid request: malformed JSON, wrong types, unknown fields or unknown query parameters (details list their paths)',
  401: 'Missing or invalid API key',
  404: 'No such resource for this team',
  409: 'The session has ended or is not running, its waiting messages are full (queue_full), or a request with this Idempotency-Key is still running',
  413: 'Body larger than BERTH_MAX_BODY_BYTES (default 1 MiB)',
  422: 'Well-formed but unusable: e.g. a deleted agent, or an Idempotency-Key reused for a different request',
  503: 'The session, the workflow service or the database did not answer: retry later (with the same Idempotency-Key)',
} as const;

type ErrorStatus = keyof typeof errorDescriptions;

const errorResponse = (status: ErrorStatus) => ({ description: errorDescriptions[status], content: { 'application/json': { schema: ErrorSchema } } });

/** The error responses a route documents beyond the 400 and 503 every route() has; 401 always. */
export function errors(...statuses: ErrorStatus[]) {
  const out: Partial<Record<ErrorStatus, ReturnType<typeof errorResponse>>> = {};
  for (const s of [401, ...statuses] as ErrorStatus[]) out[s] = errorResponse(s);
  return out;
}

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T, required = true) {
  return { required, content: { 'application/json': { schema } } };
}

// Helpers for route definitions: the error responses each route documents, and JSON bodies.
import type { z } from '@hono/zod-openapi';
import { ErrorSchema } from './schemas.ts';

const errorDescriptions = {
  400: 'Invalid request: malformed JSON, wrong types or unknown fields (details list the field paths)',
  401: 'Missing or invalid API key',
  404: 'No such resource for this team',
  409: 'The session has ended or is not running (or a request with this Idempotency-Key is still running)',
  413: 'Body larger than BERTH_MAX_BODY_BYTES (default 1 MiB)',
  422: 'Well-formed but unusable: e.g. a deleted agent, or an Idempotency-Key reused for a different request',
  503: 'The session or the workflow service did not answer in time',
} as const;

type ErrorStatus = keyof typeof errorDescriptions;

export function errors(...statuses: ErrorStatus[]) {
  const out: Partial<Record<ErrorStatus, { description: string; content: { 'application/json': { schema: typeof ErrorSchema } } }>> = {};
  for (const s of [401, ...statuses] as ErrorStatus[]) {
    out[s] = { description: errorDescriptions[s], content: { 'application/json': { schema: ErrorSchema } } };
  }
  return out;
}

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T, required = true) {
  return { required, content: { 'application/json': { schema } } };
}

// One error shape for every failure: {"error":{"code","message","details"}}. Handlers throw ApiError;
// validation failures, oversized bodies and unexpected errors are mapped here. A 500 never carries
// the underlying message or stack: those go to the log only.
import type { ErrorHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Hook } from '@hono/zod-openapi';
import type { z } from 'zod';
import { ServiceError } from '@temporalio/client';
import { Prisma } from '../lib/db.ts';
import type { Logger } from '../lib/log.ts';

const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;
const isTemporalUnavailable = (err: unknown) => {
  const code = err instanceof ServiceError ? (err.cause as { code?: number } | undefined)?.code : undefined;
  return code === GRPC_UNAVAILABLE || code === GRPC_DEADLINE_EXCEEDED;
};

/**
 * Postgres is down, restarting, or cut the connection mid-query: worth a retry (safe with an
 * Idempotency-Key), unlike a 500.
 */
function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof Prisma.PrismaClientInitializationError) return true;
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    if (['P1001', 'P1002', 'P1008', 'P1017'].includes(err.code)) return true; // unreachable, timed out, closed
    // Postgres's own refusals: connection exceptions (08…) and shutting down or starting up (57P0…).
    const cause = (err.meta?.driverAdapterError as { cause?: { kind?: string; code?: string } } | undefined)?.cause;
    return cause?.kind === 'postgres' && /^(08|57P0)/.test(cause.code ?? '');
  }
  // node-postgres's own, for a connection that died mid-query or a pool that could not connect.
  return err instanceof Error && /^(Connection terminated|timeout exceeded when trying to connect)/.test(err.message);
}

export interface FieldError {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details: FieldError[] = [],
  ) {
    super(message);
  }
}

export const notFound = (what: string, id: string) => new ApiError(404, 'not_found', `${what} ${id} not found`);
export const sessionEnded = (id: string) => new ApiError(409, 'session_ended', `session ${id} has ended`);

export function errorBody(code: string, message: string, details: FieldError[] = []) {
  return { error: { code, message, details } };
}

/** Zod issues as field paths ("tools.0"); an unknown field is reported at its own path. */
export function fieldErrors(error: z.core.$ZodError): FieldError[] {
  return error.issues.flatMap((issue) => {
    const base = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ path: [...base, k].join('.'), message: 'unknown field' }));
    }
    // A bad record key (env name): the key's own complaint says more than "Invalid key in record".
    const message = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
    return [{ path: base.join('.'), message }];
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the hook is shared by routes of every input type
export const validationHook: Hook<any, any, any, Response | undefined> = (result, c) => {
  if (result.success) return undefined;
  if (result.target === 'param') return c.json(errorBody('not_found', `${c.req.path} not found`), 404);
  const where = result.target === 'json' ? 'request body' : result.target;
  return c.json(errorBody('invalid_request', `invalid ${where}`, fieldErrors(result.error)), 400);
};

export const payloadTooLarge = (maxBytes: number) =>
  new ApiError(413, 'payload_too_large', `request body exceeds ${maxBytes} bytes (BERTH_MAX_BODY_BYTES)`);

export function errorHandler(log: Logger): ErrorHandler {
  return (err, c) => {
    if (err instanceof ApiError) return c.json(errorBody(err.code, err.message, err.details), err.status);
    if (err instanceof HTTPException && err.status < 500) {
      // Hono's own 4xx: malformed JSON (400), unsupported media type (415).
      const code = err.status === 400 ? 'invalid_request' : err.status === 415 ? 'unsupported_media_type' : 'bad_request';
      return c.json(errorBody(code, err.message, err.status === 400 ? [{ path: '', message: err.message }] : []), err.status);
    }
    if (isTemporalUnavailable(err)) {
      log.warn('temporal unavailable', { method: c.req.method, path: c.req.path, err });
      return c.json(errorBody('temporal_unavailable', 'the workflow service is not reachable; retry later'), 503);
    }
    if (isDatabaseUnavailable(err)) {
      log.warn('database unavailable', { method: c.req.method, path: c.req.path, err });
      return c.json(errorBody('database_unavailable', 'the database is not reachable; retry later'), 503);
    }
    log.error('unhandled error', { method: c.req.method, path: c.req.path, err });
    return c.json(errorBody('internal', 'internal error'), 500);
  };
}

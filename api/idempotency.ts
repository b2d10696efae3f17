// Idempotency-Key for writes. The first request with a key claims it (a row with status 0), runs,
// and stores its success response; a retry with the same key and the same request gets that
// response replayed, one with a different request gets 422. A failed run releases the key so the
// client may retry. Called after validation, so bad input never claims a key. Keys are kept for
// IDEMPOTENCY_KEY_TTL_MS: an older one counts as never used, and the web process sweeps them hourly.
import { createHash } from 'node:crypto';
import type { Context } from 'hono';
import { db, Prisma } from '../lib/db.ts';
import type { AppEnv } from './context.ts';
import { ApiError } from './errors.ts';

const IN_PROGRESS = 0;

/** How long a key and its response are kept (as Stripe does): a client's retries end well within it. */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60 * 1000;

const expiredBefore = () => new Date(Date.now() - IDEMPOTENCY_KEY_TTL_MS);

/** Deletes the keys past their time; returns how many. */
export async function sweepIdempotencyKeys(): Promise<number> {
  const { count } = await db().idempotencyKey.deleteMany({ where: { createdAt: { lt: expiredBefore() } } });
  return count;
}

/** Runs `write` at most once per (team, Idempotency-Key); without the header it just runs it. */
export async function idempotent<T>(c: Context<AppEnv>, request: unknown, status: number, write: () => Promise<T>): Promise<T> {
  const key = c.req.header('idempotency-key'); // length checked by IdempotencyHeaders
  if (key === undefined) return write();
  const teamId = c.var.teamId;
  const requestHash = createHash('sha256')
    .update(JSON.stringify([c.req.method, c.req.path, request]))
    .digest('hex');
  const claim = () =>
    db().idempotencyKey.createMany({ data: [{ teamId, key, requestHash, status: IN_PROGRESS, body: {} }], skipDuplicates: true });
  let claimed = await claim();
  if (claimed.count === 0) {
    // An expired key not swept yet is free again (deleted only if still expired, so one request wins).
    const expired = await db().idempotencyKey.deleteMany({ where: { teamId, key, createdAt: { lt: expiredBefore() } } });
    if (expired.count > 0) claimed = await claim();
  }
  if (claimed.count === 0) {
    const prior = await db().idempotencyKey.findUnique({ where: { teamId_key: { teamId, key } } });
    if (!prior || prior.requestHash !== requestHash) {
      throw new ApiError(422, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request');
    }
    if (prior.status === IN_PROGRESS) {
      throw new ApiError(409, 'idempotency_in_progress', 'a request with this Idempotency-Key is still running');
    }
    return prior.body as T;
  }
  try {
    const body = await write();
    await db().idempotencyKey.update({
      where: { teamId_key: { teamId, key } },
      data: { status, body: body as Prisma.InputJsonValue },
    });
    return body;
  } catch (err) {
    await db().idempotencyKey.delete({ where: { teamId_key: { teamId, key } } }).catch(() => undefined);
    throw err;
  }
}

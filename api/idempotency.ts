// Idempotency-Key for writes. The first request with a key claims it (a row with status 0), runs,
// and stores its success response; a retry with the same key and the same request gets that
// response replayed, one with a different request gets 422. A failed run releases the key so the
// client may retry. Called after validation, so bad input never claims a key. Keys are kept for
// IDEMPOTENCY_KEY_TTL_MS: an older one counts as never used, and the web process sweeps them hourly.
//
// A web process can die mid-write (a deploy, SIGKILL) and leave its claim in progress. A claim held
// longer than any write takes is taken over by the next retry, which runs the write again with the
// same ids (seeded by the claim), so what the dead request created is found, not made twice.
import { createHash } from 'node:crypto';
import type { Context } from 'hono';
import { loadConfig } from '../lib/config.ts';
import { db, Prisma } from '../lib/db.ts';
import { newId, seededIds, type IdSource } from '../lib/ids.ts';
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

/**
 * How long a claim may stay in progress before a retry takes it over. Longer than any write: each
 * makes at most two Temporal calls (a start, then a describe after a failed one) bounded by
 * BERTH_TEMPORAL_DEADLINE_S.
 */
export const abandonedAfterMs = () => (2 * loadConfig().BERTH_TEMPORAL_DEADLINE_S + 30) * 1000;

/**
 * Runs `write` at most once per (team, Idempotency-Key); without the header it just runs it. The
 * ids `write` makes with `ids` are the same when a retry runs it again after its first run died.
 */
export async function idempotent<T>(c: Context<AppEnv>, request: unknown, status: number, write: (ids: IdSource) => Promise<T>): Promise<T> {
  const key = c.req.header('idempotency-key'); // length checked by IdempotencyHeaders
  if (key === undefined) return write(newId);
  const teamId = c.var.teamId;
  const requestHash = createHash('sha256')
    .update(JSON.stringify([c.req.method, c.req.path, request]))
    .digest('hex');
  const now = new Date();
  const claim = () =>
    db().idempotencyKey.createMany({ data: [{ teamId, key, requestHash, status: IN_PROGRESS, body: {}, createdAt: now, claimedAt: now }], skipDuplicates: true });
  let claimed = await claim();
  if (claimed.count === 0) {
    // An expired key not swept yet is free again (deleted only if still expired, so one request wins).
    const expired = await db().idempotencyKey.deleteMany({ where: { teamId, key, createdAt: { lt: expiredBefore() } } });
    if (expired.count > 0) claimed = await claim();
  }
  let createdAt = now; // the claim's, which seeds the write's ids
  if (claimed.count === 0) {
    const prior = await db().idempotencyKey.findUnique({ where: { teamId_key: { teamId, key } } });
    if (!prior || prior.requestHash !== requestHash) {
      throw new ApiError(422, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request');
    }
    if (prior.status !== IN_PROGRESS) return prior.body as T;
    // Taken over only when abandoned, and by one retry: the update wins for the first that makes it.
    const takeover = await db().idempotencyKey.updateMany({
      where: { teamId, key, status: IN_PROGRESS, claimedAt: { lt: new Date(now.getTime() - abandonedAfterMs()) } },
      data: { claimedAt: now },
    });
    if (takeover.count === 0) {
      throw new ApiError(409, 'idempotency_in_progress', 'a request with this Idempotency-Key is still running');
    }
    createdAt = prior.createdAt;
  }
  try {
    const body = await write(seededIds(`${teamId}\0${key}\0${createdAt.toISOString()}`));
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

export const isUniqueViolation = (err: unknown) => err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002';

/**
 * Inserts a row under an id from `idempotent`'s ids; when a first run that died already inserted it
 * (its id is taken), returns that row instead. Any other conflict is the caller's to name.
 */
export async function insertOnce<R>(insert: () => Promise<R>, findById: () => Promise<R | null>): Promise<R> {
  try {
    return await insert();
  } catch (err) {
    const mine = isUniqueViolation(err) ? await findById() : null;
    if (mine) return mine;
    throw err;
  }
}

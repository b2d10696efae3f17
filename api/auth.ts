// Bearer-key authentication. Each resolver maps a presented key to a team id (or nothing); routes
// only ever read c.var.teamId, so per-team hashed keys (table api_keys) slot in as one more resolver.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from './context.ts';
import { ApiError } from './errors.ts';

export type KeyResolver = (key: string) => Promise<string | undefined>;

/** The team the embedded install's admin key belongs to (seeded by the first migration). */
export const DEFAULT_TEAM_ID = 'team_default';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The single admin key from BERTH_ADMIN_API_KEY; compared in constant time (digests have equal length). */
export function adminKeyResolver(adminKey: string | undefined): KeyResolver {
  const expected = adminKey === undefined ? undefined : digest(adminKey);
  return async (key) => (expected && timingSafeEqual(digest(key), expected) ? DEFAULT_TEAM_ID : undefined);
}

export function requireAuth(resolvers: KeyResolver[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    const key = match?.[1];
    let teamId: string | undefined;
    for (const resolve of resolvers) {
      if (teamId || !key) break;
      teamId = await resolve(key);
    }
    if (!teamId) throw new ApiError(401, 'unauthorized', 'missing or invalid API key (Authorization: Bearer <key>)');
    c.set('teamId', teamId);
    await next();
  };
}

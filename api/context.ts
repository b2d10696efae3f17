// What every route module receives, and the router factory they share: one validation hook, so a
// schema failure anywhere becomes the same 400 invalid_request with field paths.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config.ts';
import type { EventBus } from '../lib/events.ts';
import type { Logger } from '../lib/log.ts';
import type { KeyResolver } from './auth.ts';
import { validationHook } from './errors.ts';

export interface ApiDeps {
  config: Config;
  temporal: Client;
  eventBus: EventBus;
  log: Logger;
  /** Who a Bearer key belongs to; default: the admin key (BERTH_ADMIN_API_KEY) for team_default. */
  keyResolvers?: KeyResolver[];
  /** Aborted when the process starts to shut down: event streams end then (see api/routes/events.ts). */
  closing?: AbortSignal;
}

/** Set by the auth middleware: the team the caller acts for. Every query is scoped by it. */
export interface AppEnv {
  Variables: { teamId: string };
}

export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

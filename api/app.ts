// The Hono app: health probes and the OpenAPI document (no auth), then everything under /v1 behind
// the body limit and Bearer auth. New /v1 route modules (e.g. credentials) register in
// registerV1Routes; a UI (the dashboard) mounts on the root app after /v1, in createApp.
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { adminKeyResolver, requireAuth } from './auth.ts';
import { createRouter, type ApiDeps, type AppEnv } from './context.ts';
import { errorBody, errorHandler, payloadTooLarge } from './errors.ts';
import { agentRoutes } from './routes/agents.ts';
import { credentialRoutes } from './routes/credentials.ts';
import { eventRoutes } from './routes/events.ts';
import { healthRoutes } from './routes/health.ts';
import { messageRoutes } from './routes/messages.ts';
import { modelRoutes } from './routes/models.ts';
import { overviewRoutes } from './routes/overview.ts';
import { sessionRoutes } from './routes/sessions.ts';

export type { ApiDeps } from './context.ts';

function registerV1Routes(v1: OpenAPIHono<AppEnv>, deps: ApiDeps): void {
  v1.route('/', agentRoutes());
  v1.route('/', sessionRoutes(deps));
  v1.route('/', messageRoutes(deps));
  v1.route('/', eventRoutes(deps));
  v1.route('/', modelRoutes(deps));
  v1.route('/', overviewRoutes());
  v1.route('/', credentialRoutes(deps));
}

export function createApp(deps: ApiDeps): OpenAPIHono<AppEnv> {
  const { config, log } = deps;
  const app = createRouter();

  // One access-log line per request; never headers or bodies.
  app.use(async (c, next) => {
    const start = performance.now();
    await next();
    log.info('request', { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - start) });
  });

  app.route('/', healthRoutes(deps));
  // Registered before /v1's middleware, so the document needs no key.
  app.doc('/v1/openapi.json', {
    openapi: '3.0.3',
    info: { title: 'Berth API', version: '1', description: `JSON bodies up to ${config.BERTH_MAX_BODY_BYTES} bytes (BERTH_MAX_BODY_BYTES); larger ones get 413.` },
    security: [{ bearer: [] }],
  });

  const keyResolvers = deps.keyResolvers ?? [adminKeyResolver(config.BERTH_ADMIN_API_KEY)];
  const v1 = createRouter();
  v1.use(requireAuth(keyResolvers));
  v1.use(bodyLimit({ maxSize: config.BERTH_MAX_BODY_BYTES, onError: () => { throw payloadTooLarge(config.BERTH_MAX_BODY_BYTES); } }));
  v1.use(emptyJsonIsEmptyObject);
  v1.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  registerV1Routes(v1, deps);
  app.route('/v1', v1);

  app.notFound((c) => {
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length === 0) return c.json(errorBody('not_found', `no route for ${c.req.method} ${c.req.path}`), 404);
    c.header('Allow', allowed.join(', '));
    return c.json(errorBody('method_not_allowed', `${c.req.method} is not allowed on ${c.req.path}; it takes ${allowed.join(', ')}`), 405);
  });
  app.onError(errorHandler(log));
  return app;
}

/**
 * Many clients send `Content-Type: application/json` with an empty body on a POST that needs none
 * (abort): read it as {}, so that it validates like one instead of failing as malformed JSON. Empty:
 * `Content-Length: 0`, or no length and nothing to read (curl -X POST without -d).
 */
const emptyJsonIsEmptyObject: MiddlewareHandler = async (c, next) => {
  const mayHaveBody = c.req.method !== 'GET' && c.req.method !== 'HEAD';
  if (mayHaveBody && /json/i.test(c.req.header('content-type') ?? '') && (await bodyIsEmpty(c.req.raw))) {
    const headers = new Headers(c.req.raw.headers);
    headers.delete('content-length');
    c.req.raw = new Request(c.req.raw, { headers, body: '{}' });
  }
  await next();
};

async function bodyIsEmpty(req: Request): Promise<boolean> {
  const length = req.headers.get('content-length');
  if (length !== null || req.body === null) return length === '0' || req.body === null;
  return (await req.clone().text()) === '';
}

/** The methods some route serves at this path (for a 405 and its Allow header); none for an unknown path. */
function allowedMethods(app: OpenAPIHono<AppEnv>, path: string): string[] {
  const segments = path.split('/');
  const matches = (pattern: string) => {
    const parts = pattern.split('/');
    return parts.length === segments.length && parts.every((p, i) => (p.startsWith(':') ? segments[i] !== '' : p === segments[i]));
  };
  return [...new Set(app.routes.filter((r) => r.method !== 'ALL' && matches(r.path)).map((r) => r.method))].sort();
}

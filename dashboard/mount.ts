// Mounts the built Remix dashboard (dashboard/build, made by bin/setup) on the web process's Hono
// app, after /v1 and the health probes: hashed assets from build/client with a long cache life, every
// other path through Remix's request handler. Loaders reach the API in memory (context.berthApi), never
// over the network, so the dashboard works whatever BERTH_HOST the process binds.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from '../lib/log.ts';

const BUILD_DIR = fileURLToPath(new URL('./build', import.meta.url));
const SERVER_BUILD = path.join(BUILD_DIR, 'server', 'index.js');
const CLIENT_DIR = path.join(BUILD_DIR, 'client');
/** Forms and composer messages are small; the API's own limit applies to what they carry on. */
const MAX_BODY_BYTES = 1_048_576;

type RemixHandler = (request: Request, context: { berthApi: (request: Request) => Promise<Response> }) => Promise<Response>;
interface RemixNode {
  createRequestHandler(build: unknown, mode: 'production'): RemixHandler;
}
// Imported by name: a static import would bring @remix-run/node's global types (a required
// process.env.NODE_ENV) into every file the web process compiles with.
const REMIX_NODE: string = '@remix-run/node';

/** Returns false (and logs why) when the dashboard has not been built: the API still serves. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any Hono app: the dashboard uses none of its typed variables
export async function mountDashboard(app: Hono<any>, log: Logger): Promise<boolean> {
  if (!fs.existsSync(SERVER_BUILD)) {
    log.warn('dashboard not built: run `npm run setup` (or `npm run dashboard:build`); serving the API only', { expected: SERVER_BUILD });
    return false;
  }
  const { createRequestHandler } = (await import(REMIX_NODE)) as RemixNode;
  const handle = createRequestHandler(await import(pathToFileURL(SERVER_BUILD).href), 'production');
  const berthApi = async (request: Request) => app.fetch(request);

  app.use('/assets/*', async (c, next) => {
    await next();
    if (c.res.ok) c.header('cache-control', 'public, max-age=31536000, immutable');
  });
  const assets = serveStatic({ root: CLIENT_DIR });
  app.use('*', (c, next) => (c.req.path.startsWith('/v1/') ? next() : assets(c, next)));
  const limit = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => c.text('request body too large', 413) });
  app.all('*', limit, (c) => {
    // /v1 belongs to the API: an unknown /v1 path is the API's JSON 404, not a dashboard page.
    if (c.req.path === '/v1' || c.req.path.startsWith('/v1/')) return c.notFound();
    return handle(c.req.raw, { berthApi });
  });
  return true;
}

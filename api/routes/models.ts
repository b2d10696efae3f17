// The models an agent can use: the LiteLLM gateway's /v1/models, fetched with LITELLM_API_KEY so
// the dashboard can offer them without ever seeing the gateway key.
import { z } from '@hono/zod-openapi';
import type { ApiDeps } from '../context.ts';
import { createRouter } from '../context.ts';
import { ApiError } from '../errors.ts';
import { errors, json, route } from '../openapi.ts';
import { ErrorSchema } from '../schemas.ts';

const GATEWAY_TIMEOUT_MS = 5_000;
/** The list changes only when the gateway's config does; a form that asks on every load need not wait. */
const CACHE_MS = 30_000;

const ModelList = z
  .object({ data: z.array(z.object({ id: z.string().openapi({ example: 'gpt-4o-mini' }) })) })
  .openapi('ModelList');

const list = route({
  method: 'get', path: '/models', tags: ['models'], summary: "The gateway's models (names an agent's `model` may take)",
  responses: {
    200: json(ModelList, 'Model names, sorted'),
    ...errors(),
    502: json(ErrorSchema, 'The gateway answered with an error'),
  },
});

const GatewayModels = z.object({ data: z.array(z.object({ id: z.string() })) });

export function modelRoutes({ config }: ApiDeps) {
  const app = createRouter();
  let cache: { until: number; ids: string[] } | undefined;
  app.openapi(list, async (c) => {
    if (cache && cache.until > Date.now()) return c.json({ data: cache.ids.map((id) => ({ id })) }, 200);
    const url = config.LITELLM_GATEWAY_URL;
    if (!url) throw new ApiError(503, 'gateway_not_configured', 'no model gateway is configured (LITELLM_GATEWAY_URL)');
    const res = await fetch(new URL('/v1/models', url), {
      headers: config.LITELLM_API_KEY ? { authorization: `Bearer ${config.LITELLM_API_KEY}` } : {},
      signal: AbortSignal.timeout(GATEWAY_TIMEOUT_MS),
    }).catch(() => {
      throw new ApiError(503, 'gateway_unavailable', 'the model gateway is not reachable; retry later');
    });
    const parsed = GatewayModels.safeParse(await res.json().catch(() => undefined));
    if (!res.ok || !parsed.success) throw new ApiError(502, 'gateway_error', `the model gateway answered ${res.status} without a model list`);
    const ids = [...new Set(parsed.data.data.map((m) => m.id))].sort();
    cache = { until: Date.now() + CACHE_MS, ids };
    return c.json({ data: ids.map((id) => ({ id })) }, 200);
  });
  return app;
}

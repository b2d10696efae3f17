// Agents: what a session runs (model, system prompt, tools, sandbox env). DELETE is a soft delete;
// a deleted agent is 404 here and unusable for new sessions (running sessions keep their snapshot).
import { db } from '../../lib/db.ts';
import type { Agent as AgentRow } from '../../lib/generated/prisma/client.ts';
import type { ToolName } from '../../lib/types.ts';
import { agentCredentialIds } from '../../lib/vault.ts';
import { createRouter } from '../context.ts';
import { ApiError, notFound } from '../errors.ts';
import { idempotent, insertOnce } from '../idempotency.ts';
import { errors, json, jsonBody, route } from '../openapi.ts';
import { newestFirst, newestFirstAfter, pageOf } from '../pagination.ts';
import { Agent, AgentCreate, AgentDeleted, AgentPage, AgentPatch, IdParam, IdempotencyHeaders, PageQuery, type AgentJson } from '../schemas.ts';

const tags = ['agents'];

export function agentJson(a: AgentRow): AgentJson {
  return {
    id: a.id,
    name: a.name,
    model: a.model,
    system_prompt: a.systemPrompt,
    tools: a.tools as ToolName[],
    env: a.env as Record<string, string>,
    credential_ids: agentCredentialIds(a.credentialIds),
    egress: { allow: [], deny: [], ...(a.egress as Partial<AgentJson['egress']>) },
    created_at: a.createdAt.toISOString(),
    updated_at: a.updatedAt.toISOString(),
  };
}

/** A live (not deleted) agent of the team, or 404. */
export async function findAgent(teamId: string, id: string): Promise<AgentRow> {
  const agent = await db().agent.findFirst({ where: { id, teamId, deletedAt: null } });
  if (!agent) throw notFound('agent', id);
  return agent;
}

/** Every attached credential must be the team's own. */
async function checkCredentials(teamId: string, ids: string[] | undefined): Promise<void> {
  if (!ids?.length) return;
  const found = await db().credential.findMany({ where: { id: { in: ids }, teamId }, select: { id: true } });
  const missing = ids.filter((id) => !found.some((f) => f.id === id));
  if (missing.length) {
    throw new ApiError(400, 'invalid_request', 'unknown credential', missing.map((id) => ({ path: `credential_ids.${ids.indexOf(id)}`, message: `no credential ${id}` })));
  }
}

const create = route({
  method: 'post', path: '/agents', tags, summary: 'Create an agent',
  request: { body: jsonBody(AgentCreate), headers: IdempotencyHeaders },
  responses: { 201: json(Agent, 'The agent'), ...errors(413, 422) },
});
const list = route({
  method: 'get', path: '/agents', tags, summary: 'List agents, newest first',
  request: { query: PageQuery },
  responses: { 200: json(AgentPage, 'A page of agents'), ...errors() },
});
const get = route({
  method: 'get', path: '/agents/{id}', tags, summary: 'Get an agent',
  request: { params: IdParam },
  responses: { 200: json(Agent, 'The agent'), ...errors(404) },
});
const patch = route({
  method: 'patch', path: '/agents/{id}', tags, summary: 'Change an agent (new sessions see the change)',
  request: { params: IdParam, body: jsonBody(AgentPatch), headers: IdempotencyHeaders },
  responses: { 200: json(Agent, 'The agent'), ...errors(404, 413, 422) },
});
const remove = route({
  method: 'delete', path: '/agents/{id}', tags, summary: 'Delete an agent (soft)',
  request: { params: IdParam, headers: IdempotencyHeaders },
  responses: { 200: json(AgentDeleted, 'Deleted'), ...errors(404, 422) },
});

export function agentRoutes() {
  const app = createRouter();

  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const teamId = c.var.teamId;
    await checkCredentials(teamId, body.credential_ids);
    const agent = await idempotent(c, body, 201, async (ids) => {
      const id = ids('agt');
      const row = await insertOnce(
        () => db().agent.create({
          data: {
            id, teamId, name: body.name, model: body.model, systemPrompt: body.system_prompt, tools: body.tools, env: body.env,
            credentialIds: body.credential_ids, egress: body.egress,
          },
        }),
        () => db().agent.findFirst({ where: { id, teamId } }),
      );
      return agentJson(row);
    });
    return c.json(agent, 201);
  });

  app.openapi(list, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const rows = await db().agent.findMany({
      where: { teamId: c.var.teamId, deletedAt: null, ...newestFirstAfter(cursor) },
      orderBy: newestFirst,
      take: limit + 1,
    });
    const page = pageOf(rows, limit);
    return c.json({ data: page.rows.map(agentJson), next_cursor: page.next_cursor }, 200);
  });

  app.openapi(get, async (c) => c.json(agentJson(await findAgent(c.var.teamId, c.req.valid('param').id)), 200));

  app.openapi(patch, async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    await checkCredentials(c.var.teamId, body.credential_ids);
    const agent = await idempotent(c, body, 200, async () => {
      await findAgent(c.var.teamId, id);
      const row = await db().agent.update({
        where: { id },
        data: {
          name: body.name, model: body.model, systemPrompt: body.system_prompt, tools: body.tools, env: body.env,
          credentialIds: body.credential_ids, egress: body.egress,
        },
      });
      return agentJson(row);
    });
    return c.json(agent, 200);
  });

  app.openapi(remove, async (c) => {
    const { id } = c.req.valid('param');
    const result = await idempotent(c, null, 200, async () => {
      await findAgent(c.var.teamId, id);
      await db().agent.update({ where: { id }, data: { deletedAt: new Date() } });
      return { id, deleted: true as const };
    });
    return c.json(result, 200);
  });

  return app;
}

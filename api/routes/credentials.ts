// Credentials: secrets the vault proxy injects for an agent's sessions. `value` is write-only: it is
// sealed (lib/vault.ts) before it is stored and never appears in a response, a log or an error.
// Also the session's interceptions: every swap and block the proxy recorded.
import { createHmac } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { db } from '../../lib/db.ts';
import type { Credential as CredentialRow, Interception as InterceptionRow } from '../../lib/generated/prisma/client.ts';
import {
  DEFAULT_INJECTION, INJECTION_KINDS, VaultKeyError, credentialNameSchema, hostPatternSchema, keyringFromEnv, seal, type Keyring,
} from '../../lib/vault.ts';
import { createRouter, type ApiDeps } from '../context.ts';
import { ApiError, notFound } from '../errors.ts';
import { idempotent, insertOnce, isUniqueViolation } from '../idempotency.ts';
import { errors, json, jsonBody, route } from '../openapi.ts';
import { newestFirst, newestFirstAfter, pageOf, seqAfter, encodeCursor } from '../pagination.ts';
import { IdParam, IdempotencyHeaders, PageQuery } from '../schemas.ts';

const tags = ['credentials'];
const timestamp = z.string().openapi({ format: 'date-time' });

const fields = {
  name: credentialNameSchema.describe('The environment variable the agent sees (holding a stub), e.g. GITHUB_TOKEN'),
  value: z
    .string()
    .min(1)
    .max(16_384)
    .regex(/^[^\0\r\n]*$/, 'must be one line without NUL')
    .refine((v) => v.trim().length > 0, 'must not be empty')
    .openapi({ description: 'The secret. Write-only: never returned' }),
  hosts: z
    .array(hostPatternSchema)
    .min(1)
    .max(100)
    .openapi({ description: 'Hosts the value may be sent to: exact names and *.wildcards', example: ['api.github.com', '*.githubusercontent.com'] }),
  inject: z
    .array(z.enum(INJECTION_KINDS))
    .min(1)
    .refine((k) => new Set(k).size === k.length, 'must not repeat a kind')
    .openapi({ description: 'Where the stub is replaced; `body` is opt-in' }),
};
const CredentialCreate = z
  .object({ ...fields, inject: fields.inject.default([...DEFAULT_INJECTION]) })
  .strict()
  .openapi('CredentialCreate');
const CredentialPatch = z.object(fields).partial().strict().openapi('CredentialPatch');
const Credential = z
  .object({
    id: z.string(), name: z.string(), hosts: z.array(z.string()), inject: z.array(z.enum(INJECTION_KINDS)),
    key_id: z.string().openapi({ description: 'Id of the vault key the value is sealed with' }), created_at: timestamp, updated_at: timestamp,
  })
  .openapi('Credential');
const CredentialPage = z.object({ data: z.array(Credential), next_cursor: z.string().nullable() }).openapi('CredentialPage');
const Interception = z
  .object({
    id: z.string(), at: timestamp, host: z.string(), method: z.string(), path: z.string(),
    credential: z.string().nullable(), decision: z.enum(['swapped', 'blocked']), rule: z.string(),
  })
  .openapi('Interception');
const InterceptionPage = z.object({ data: z.array(Interception), next_cursor: z.string().nullable() }).openapi('InterceptionPage');

type CredentialJson = z.infer<typeof Credential>;

function credentialJson(c: CredentialRow): CredentialJson {
  return {
    id: c.id, name: c.name, hosts: c.hosts, inject: c.inject as CredentialJson['inject'], key_id: c.keyId,
    created_at: c.createdAt.toISOString(), updated_at: c.updatedAt.toISOString(),
  };
}

function interceptionJson(i: InterceptionRow): z.infer<typeof Interception> {
  return {
    id: String(i.id), at: i.createdAt.toISOString(), host: i.host, method: i.method, path: i.path,
    credential: i.credentialName, decision: i.decision as 'swapped' | 'blocked', rule: i.rule,
  };
}

const create = route({
  method: 'post', path: '/credentials', tags, summary: 'Store a credential (the value is sealed and never returned)',
  request: { body: jsonBody(CredentialCreate), headers: IdempotencyHeaders },
  responses: { 201: json(Credential, 'The credential, without its value'), ...errors(409, 413, 422) },
});
const list = route({
  method: 'get', path: '/credentials', tags, summary: 'List credentials, newest first',
  request: { query: PageQuery },
  responses: { 200: json(CredentialPage, 'A page of credentials'), ...errors() },
});
const get = route({
  method: 'get', path: '/credentials/{id}', tags, summary: 'Get a credential (never its value)',
  request: { params: IdParam },
  responses: { 200: json(Credential, 'The credential'), ...errors(404) },
});
const patch = route({
  method: 'patch', path: '/credentials/{id}', tags, summary: 'Change a credential; a new value is sealed under the current key',
  request: { params: IdParam, body: jsonBody(CredentialPatch), headers: IdempotencyHeaders },
  responses: { 200: json(Credential, 'The credential'), ...errors(404, 409, 413, 422) },
});
const remove = route({
  method: 'delete', path: '/credentials/{id}', tags, summary: 'Delete a credential (sessions stop getting it within seconds)',
  request: { params: IdParam, headers: IdempotencyHeaders },
  responses: { 200: json(z.object({ id: z.string(), deleted: z.literal(true) }), 'Deleted'), ...errors(404, 422) },
});
const interceptions = route({
  method: 'get', path: '/sessions/{id}/interceptions', tags: ['sessions'], summary: "The vault proxy's swaps and blocks for a session, oldest first",
  request: { params: IdParam, query: PageQuery },
  responses: { 200: json(InterceptionPage, 'A page of interceptions'), ...errors(404) },
});

const duplicateName = (name: string) => new ApiError(409, 'conflict', `a credential named ${name} already exists`);

export function credentialRoutes(deps: ApiDeps) {
  const app = createRouter();
  let keyring: Keyring | undefined;
  const vault = () => {
    try {
      const { BERTH_VAULT_KEY, BERTH_VAULT_KEYS, BERTH_VAULT_KEY_ID } = deps.config;
      return (keyring ??= keyringFromEnv({ BERTH_VAULT_KEY, BERTH_VAULT_KEYS, BERTH_VAULT_KEY_ID }));
    } catch (err) {
      if (err instanceof VaultKeyError) throw new ApiError(503, 'vault_unavailable', err.message);
      throw err;
    }
  };
  // The idempotency record keeps a hash of the request; a keyed MAC keeps the value out of it.
  const fingerprint = (body: { value?: string }) => ({ ...body, value: body.value && createHmac('sha256', vault().keys.get(vault().currentId)!).update(body.value).digest('hex') });
  const findCredential = async (teamId: string, id: string) => {
    const row = await db().credential.findFirst({ where: { id, teamId } });
    if (!row) throw notFound('credential', id);
    return row;
  };

  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const teamId = c.var.teamId;
    const result = await idempotent(c, fingerprint(body), 201, async (ids) => {
      const id = ids('cred');
      const sealed = seal(vault(), body.value, id);
      try {
        const row = await insertOnce(
          () => db().credential.create({
            data: { id, teamId, name: body.name, ciphertext: new Uint8Array(sealed.ciphertext), keyId: sealed.keyId, hosts: body.hosts, inject: body.inject },
          }),
          () => db().credential.findFirst({ where: { id, teamId } }),
        );
        return credentialJson(row);
      } catch (err) {
        throw isUniqueViolation(err) ? duplicateName(body.name) : err;
      }
    });
    return c.json(result, 201);
  });

  app.openapi(list, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const rows = await db().credential.findMany({
      where: { teamId: c.var.teamId, ...newestFirstAfter(cursor) }, orderBy: newestFirst, take: limit + 1,
    });
    const page = pageOf(rows, limit);
    return c.json({ data: page.rows.map(credentialJson), next_cursor: page.next_cursor }, 200);
  });

  app.openapi(get, async (c) => c.json(credentialJson(await findCredential(c.var.teamId, c.req.valid('param').id)), 200));

  app.openapi(patch, async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    const result = await idempotent(c, fingerprint(body), 200, async () => {
      await findCredential(c.var.teamId, id);
      const sealed = body.value === undefined ? undefined : seal(vault(), body.value, id);
      try {
        const row = await db().credential.update({
          where: { id },
          data: { name: body.name, hosts: body.hosts, inject: body.inject, ...(sealed && { ciphertext: new Uint8Array(sealed.ciphertext), keyId: sealed.keyId }) },
        });
        return credentialJson(row);
      } catch (err) {
        throw isUniqueViolation(err) ? duplicateName(body.name ?? '') : err;
      }
    });
    return c.json(result, 200);
  });

  app.openapi(remove, async (c) => {
    const { id } = c.req.valid('param');
    const result = await idempotent(c, null, 200, async () => {
      await findCredential(c.var.teamId, id);
      await db().credential.delete({ where: { id } });
      return { id, deleted: true as const };
    });
    return c.json(result, 200);
  });

  app.openapi(interceptions, async (c) => {
    const { id } = c.req.valid('param');
    const { limit, cursor } = c.req.valid('query');
    const session = await db().session.findFirst({ where: { id, teamId: c.var.teamId }, select: { id: true } });
    if (!session) throw notFound('session', id);
    const rows = await db().interception.findMany({
      where: { sessionId: id, ...(cursor !== undefined && { id: { gt: BigInt(seqAfter(cursor)) } }) },
      orderBy: { id: 'asc' },
      take: limit + 1,
    });
    const page = rows.slice(0, limit);
    const next = rows.length > limit ? encodeCursor(Number(page[page.length - 1]!.id)) : null;
    return c.json({ data: page.map(interceptionJson), next_cursor: next }, 200);
  });

  return app;
}

// Request and response shapes. The same zod schemas validate requests and generate the OpenAPI
// document. Requests are strict: an unknown field is a 400, never silently dropped.
import { z } from '@hono/zod-openapi';
import { TOOL_NAMES } from '../lib/types.ts';
import { egressPolicySchema } from '../lib/vault.ts';
import { MAX_WAITING_BYTES } from '../workflows/messages.ts';

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_request' }),
      message: z.string(),
      details: z.array(z.object({ path: z.string().openapi({ example: 'tools.0' }), message: z.string() })),
    }),
  })
  .openapi('Error');

const timestamp = z.string().openapi({ format: 'date-time' });
/** Any string Postgres can store (text and jsonb refuse NUL). */
const text = () => z.string().regex(/^[^\0]*$/, 'must not contain NUL characters');
/** An id that does not look like one cannot exist: the validation hook answers 404 for path params. */
export const IdParam = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/).openapi({ param: { name: 'id', in: 'path' } }) });
export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional().openapi({ description: 'next_cursor of the previous page' }),
});
export const IdempotencyHeaders = z.object({
  'idempotency-key': z.string().min(1).max(255).optional().openapi({ description: 'Makes a retried write safe: the first response is replayed' }),
});
const page = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });

// ---- agents
const envName = z.string().max(128).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name');
const agentFields = {
  name: text().min(1).max(200),
  model: text().min(1).max(200).openapi({ example: 'gpt-4o-mini' }),
  system_prompt: text().max(100_000),
  tools: z
    .array(z.enum(TOOL_NAMES))
    .refine((t) => new Set(t).size === t.length, 'must not repeat a tool')
    .openapi({ description: 'Builtin tools the model may call' }),
  env: z
    .record(envName, text().max(65_536))
    .refine((e) => Object.keys(e).length <= 200, 'at most 200 variables')
    .openapi({ description: 'Environment for the sandbox (plus every CONTAINER_ENV_X of the platform)' }),
  credential_ids: z
    .array(z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, 'not a credential id'))
    .max(100)
    .refine((ids) => new Set(ids).size === ids.length, 'must not repeat a credential')
    .openapi({ description: "Credentials (the vault) whose stubs the agent's sandboxes get" }),
  // {allow, deny}: hosts, *.wildcards, IPs, CIDRs. Empty: the gateway and the credentials' bound hosts only.
  egress: egressPolicySchema,
};
export const AgentCreate = z
  .object({
    name: agentFields.name,
    model: agentFields.model,
    system_prompt: agentFields.system_prompt.default(''),
    tools: agentFields.tools.default([...TOOL_NAMES]),
    env: agentFields.env.default({}),
    credential_ids: agentFields.credential_ids.default([]),
    egress: agentFields.egress.default({ allow: [], deny: [] }),
  })
  .strict()
  .openapi('AgentCreate');
export const AgentPatch = z.object(agentFields).partial().strict().openapi('AgentPatch');
export const Agent = z
  .object({
    id: z.string(),
    name: z.string(),
    model: z.string(),
    system_prompt: z.string(),
    tools: z.array(z.enum(TOOL_NAMES)),
    env: z.record(z.string(), z.string()),
    credential_ids: z.array(z.string()),
    egress: z.object({ allow: z.array(z.string()), deny: z.array(z.string()) }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Agent');
export const AgentPage = page(Agent).openapi('AgentPage');
export const AgentDeleted = z.object({ id: z.string(), deleted: z.literal(true) }).openapi('AgentDeleted');

// ---- sessions
/** A user message: not empty, and at most what a session holds waiting (MAX_WAITING_BYTES of UTF-8). */
const messageContent = text()
  .refine((s) => s.trim().length > 0, 'must not be empty')
  .refine((s) => Buffer.byteLength(s) <= MAX_WAITING_BYTES, `must be at most ${MAX_WAITING_BYTES / 1024} KiB (UTF-8)`);
export const SESSION_STATUSES = ['active', 'hibernated', 'ended', 'failed'] as const;
export const SessionCreate = z
  .object({
    agent_id: z.string().min(1).max(100),
    message: messageContent.optional().openapi({ description: 'First user message, sent as the session starts' }),
  })
  .strict()
  .openapi('SessionCreate');
export const SessionListQuery = PageQuery.extend({
  status: z.enum(SESSION_STATUSES).optional(),
  agent_id: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,100}(,[A-Za-z0-9_-]{1,100}){0,19}$/, 'one agent id, or up to 20 separated by commas')
    .optional()
    .openapi({ description: "Only these agents' sessions (comma-separated ids)" }),
});
export const MessageAccepted = z
  .object({ message_id: z.string(), seq: z.number().int(), turn: z.number().int() })
  .openapi('MessageAccepted');
export const Session = z
  .object({
    id: z.string(),
    agent_id: z.string(),
    status: z.enum(SESSION_STATUSES),
    sandbox_state: z.string().openapi({ example: 'running' }),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() }),
    workflow_url: z.string().openapi({ description: 'The session workflow in the Temporal Web UI' }),
    created_at: timestamp,
    updated_at: timestamp,
    ended_at: timestamp.nullable(),
  })
  .openapi('Session');
export const SessionCreated = Session.extend({ message: MessageAccepted.nullable() }).openapi('SessionCreated');
export const SessionPage = page(Session).openapi('SessionPage');
export const AbortBody = z.object({ reason: text().max(1000).optional() }).strict().openapi('AbortRequest');
export const AbortAccepted = z.object({ session_id: z.string(), abort_requested: z.literal(true) }).openapi('AbortAccepted');

// ---- messages
export const MessageCreate = z
  .object({ content: messageContent })
  .strict()
  .openapi('MessageCreate');
export const MessageCreateQuery = z.object({
  wait: z.enum(['true', 'false']).default('false').openapi({ description: 'Answer when the turn ends' }),
  timeout_s: z.coerce.number().int().min(1).max(3600).default(600).openapi({ description: 'Longest wait; 202 when it passes first' }),
});
export const TurnResult = MessageAccepted.extend({
  outcome: z.enum(['completed', 'failed', 'aborted']),
  text: z.string().nullable().openapi({ description: "The assistant's final text (completed turns)" }),
  error: z.string().nullable().openapi({ description: 'Why the turn failed or was aborted' }),
}).openapi('TurnResult');
export const MessageListQuery = PageQuery.extend({ after_seq: z.coerce.number().int().min(0).optional() });
export const Message = z
  .object({
    id: z.string(),
    seq: z.number().int(),
    turn: z.number().int(),
    role: z.enum(['user', 'assistant', 'tool']),
    content: z.string(),
    tool_calls: z.unknown().nullable().openapi({ description: 'Assistant tool calls [{id, name, arguments}]' }),
    tool_call_id: z.string().nullable(),
    tool_name: z.string().nullable(),
    created_at: timestamp,
  })
  .openapi('Message');
export const MessagePage = page(Message).openapi('MessagePage');

// ---- events
export const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).optional().openapi({ description: 'Replay events after this seq (or send Last-Event-ID)' }),
});

export type AgentJson = z.infer<typeof Agent>;
export type SessionJson = z.infer<typeof Session>;
export type MessageJson = z.infer<typeof Message>;

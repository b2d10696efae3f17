// What travels over a sandbox pod's control port (pod mode): the session's view the worker pushes
// with every bind (values included: the sidecar keeps it in memory only), and the interception
// records the worker drains. Both sides parse with these schemas.
import { z } from 'zod';
import { INJECTION_KINDS, egressPolicySchema } from '../lib/vault.ts';
import type { SessionView } from './forward.ts';

const hosts = z.array(z.string().min(1).max(253)).max(256);

export const pushedViewSchema = z
  .object({
    secrets: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            stub: z.string().min(8).max(256),
            value: z.string().min(1).max(65_536),
            hosts,
            inject: z.array(z.enum(INJECTION_KINDS)).max(INJECTION_KINDS.length),
          })
          .strict(),
      )
      .max(256),
    gateway: z.object({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535), tls: z.boolean() }).strict().optional(),
    egress: z
      .object({
        policy: egressPolicySchema,
        gatewayHosts: hosts,
        credentialHosts: z.array(z.object({ name: z.string().min(1).max(64), hosts }).strict()).max(256),
      })
      .strict(),
  })
  .strict();

/** The view without its session id, which the bind's path names. */
export type PushedView = Omit<SessionView, 'sessionId'>;

export const drainRequestSchema = z.object({ epoch: z.string().max(64).optional(), after: z.number().int().min(0) }).strict();

export const drainResponseSchema = z.object({
  epoch: z.string().min(1),
  records: z.array(
    z.object({
      seq: z.number().int().min(1),
      sessionId: z.string(),
      at: z.coerce.date(),
      host: z.string(),
      method: z.string(),
      path: z.string(),
      credentialName: z.string().nullable(),
      decision: z.enum(['swapped', 'blocked']),
      rule: z.string(),
    }),
  ),
  dropped: z.number().int().min(0),
});

/** `secrets.0.value: Required` style: where the body is wrong, never what it holds. */
export function firstIssue(error: z.ZodError): { field: string; message: string } {
  const issue = error.issues[0]!;
  return { field: issue.path.join('.') || '(body)', message: issue.message };
}

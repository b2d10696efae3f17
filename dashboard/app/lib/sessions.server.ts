// Starting a session from an agent (the agents list and the agent page both offer it).
import type { AppLoadContext } from '@remix-run/node';
import { redirect } from '@remix-run/node';
import { api } from './api.server.ts';
import type { Session } from './types.ts';

export async function startSession(args: { request: Request; context: AppLoadContext }, agentId: string, idempotencyKey?: string) {
  const session = await api<Session>(args, '/v1/sessions', {
    method: 'POST',
    body: { agent_id: agentId },
    headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
  });
  return redirect(`/sessions/${session.id}`);
}

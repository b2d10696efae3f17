// Builds the model's context from the transcript in Postgres.
import { db } from '../../lib/db.ts';
import type { AgentSpec, QueuedMessage, ToolCall } from '../../lib/types.ts';
import type { ChatMessage } from './gateway.ts';

/** What the model is told for a tool call that never got a result (its turn was aborted or failed). */
export const INTERRUPTED_TOOL_RESULT = '[no result: the turn was interrupted before this tool call finished]';

/**
 * Messages in turn order (a message queued during an earlier turn has a lower seq than that turn's
 * later steps, so seq alone is not conversation order). Every assistant tool call is followed by a
 * result, as the OpenAI format requires, even when its turn was cut short: the model is never
 * called while a tool runs, so an unanswered call in the transcript was interrupted.
 */
export async function buildContext(sessionId: string, agent: AgentSpec, turnStart?: QueuedMessage): Promise<ChatMessage[]> {
  const rows = await db().message.findMany({ where: { sessionId }, orderBy: [{ turn: 'asc' }, { seq: 'asc' }] });
  // The message that starts this turn may be being recorded as this reads; it comes last.
  const missing = turnStart && !rows.some((r) => r.seq === turnStart.seq);
  const out: ChatMessage[] = agent.systemPrompt ? [{ role: 'system', content: agent.systemPrompt }] : [];
  const answered = new Set(rows.filter((r) => r.role === 'tool').map((r) => r.toolCallId));
  for (const r of rows) {
    if (r.role === 'user') out.push({ role: 'user', content: r.content });
    else if (r.role === 'tool') out.push({ role: 'tool', tool_call_id: r.toolCallId ?? '', content: r.content });
    else {
      const calls = (r.toolCalls as ToolCall[] | null) ?? [];
      out.push({
        role: 'assistant',
        content: r.content || null,
        ...(calls.length
          ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })) }
          : {}),
      });
      for (const c of calls) {
        if (!answered.has(c.id)) out.push({ role: 'tool', tool_call_id: c.id, content: INTERRUPTED_TOOL_RESULT });
      }
    }
  }
  if (missing) out.push({ role: 'user', content: turnStart.content });
  return out;
}

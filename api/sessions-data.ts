// Session rows as the API shows them: team-scoped lookup (404 for another team's id) and JSON (the
// row carries its usage: a trigger adds each message's tokens).
import type { Config } from '../lib/config.ts';
import { db } from '../lib/db.ts';
import type { Session as SessionRow } from '../lib/generated/prisma/client.ts';
import type { SessionStatus } from '../lib/types.ts';
import { notFound, sessionEnded } from './errors.ts';
import type { SessionJson } from './schemas.ts';
import { workflowUrl } from './temporal.ts';

export async function findSession(teamId: string, id: string): Promise<SessionRow> {
  const row = await db().session.findFirst({ where: { id, teamId } });
  if (!row) throw notFound('session', id);
  return row;
}

/**
 * Sessions seen open, by id → team, for the way of each message to Temporal (one read less per
 * turn). A session's team never changes, and only its workflow closes an open session: from then on
 * the workflow refuses messages itself (its update validator, or it is gone), which the message
 * route turns into the same 409 as a closed row. Least recently used go first.
 */
const seenOpen = new Map<string, string>();
const SEEN_OPEN_LIMIT = 50_000;

/** For a message: the session is this team's and, as far as this process can tell, open. */
export async function assertTakesMessages(teamId: string, id: string): Promise<void> {
  const team = seenOpen.get(id);
  if (team === undefined) {
    const row = await findSession(teamId, id);
    assertOpen(row);
  } else if (team !== teamId) {
    throw notFound('session', id);
  }
  seenOpen.delete(id); // re-inserted last: a Map iterates in insertion order
  seenOpen.set(id, teamId);
  if (seenOpen.size > SEEN_OPEN_LIMIT) seenOpen.delete(seenOpen.keys().next().value!);
}

export function isClosed(row: SessionRow): boolean {
  return row.status === 'ended' || row.status === 'failed';
}

export function assertOpen(row: SessionRow): void {
  if (isClosed(row)) throw sessionEnded(row.id);
}

export function sessionJson(config: Config, row: SessionRow): SessionJson {
  return {
    id: row.id,
    agent_id: row.agentId,
    status: row.status as SessionStatus,
    sandbox_state: row.sandboxState,
    usage: { prompt_tokens: Number(row.promptTokens), completion_tokens: Number(row.completionTokens) },
    workflow_url: workflowUrl(config, row.id),
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    ended_at: row.endedAt?.toISOString() ?? null,
  };
}

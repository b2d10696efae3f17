// Sessions whose workflow closed without ending them: terminated by an operator (Temporal Web UI or
// CLI), failed or timed out. No workflow does their bookkeeping any more, so each worker sweeps for
// them now and then: the sandbox is stopped (the workspace kept) and the session marked failed; once
// its owner deletes it (the API marks the row ended), the sandbox and workspace are removed, as
// DELETE does for a live session.
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { db } from '../../lib/db.ts';
import { appendEvents } from '../../lib/events.ts';
import { SESSION_WORKFLOW_TYPE } from '../../workflows/messages.ts';
import type { SandboxProvider } from './provider.ts';

export interface SweepResult {
  settled: string[];
  /** Sessions whose settling failed (the next sweep tries again), with why. */
  failed: Array<{ session: string; err: unknown }>;
}

/**
 * How far before the last sweep a sweep looks for closed workflows: the visibility store that
 * answers the listing may show a close this much later (Elasticsearch within seconds).
 */
const VISIBILITY_LAG_MS = 5 * 60 * 1000;

/** The sandbox states of a session that still has a sandbox or workspace somewhere. */
const HOLDS_A_SANDBOX = ['starting', 'running', 'hibernated', 'recreating'];

/**
 * A sweep over the sessions of this task queue (the sessions whose sandboxes this worker's provider
 * holds) whose workflow closed without ending them. The first sweep looks at every closed workflow
 * Temporal still keeps, since the worker may have been down a while; each later one only at those
 * closed since the sweep before. Deleted sessions are found in Postgres, so one deleted after
 * Temporal dropped its workflow's history (its retention) loses its sandbox too.
 */
export function closedSessionSweep(temporal: Client, sandboxes: SandboxProvider, taskQueue: string): () => Promise<SweepResult> {
  let lastSweep: Date | undefined;
  let retry = new Set<string>();

  return async function sweep() {
    const startedAt = new Date();
    const closed = await closedSince(temporal, taskQueue, lastSweep && new Date(lastSweep.getTime() - VISIBILITY_LAG_MS));
    // One read: of the listed (and retried) sessions those not settled already (an earlier sweep may
    // have), and every deleted session of this queue that still holds a sandbox.
    const unsettled = await db().session.findMany({
      where: {
        OR: [
          { id: { in: [...closed, ...retry] }, sandboxState: { not: 'removed' }, OR: [{ status: { not: 'failed' } }, { sandboxState: 'running' }] },
          // The row names the queue (rows from before it did are anyone's): workers of another queue
          // hold their sandboxes elsewhere, and would mark it removed with its workspace left behind.
          { status: 'ended', sandboxState: { in: HOLDS_A_SANDBOX }, OR: [{ taskQueue }, { taskQueue: null }] },
        ],
      },
      select: { id: true, status: true },
    });
    const result: SweepResult = { settled: [], failed: [] };
    for (const row of unsettled) {
      try {
        if (await settle(temporal, sandboxes, taskQueue, row)) result.settled.push(row.id);
      } catch (err) {
        result.failed.push({ session: row.id, err });
      }
    }
    retry = new Set(result.failed.map((f) => f.session));
    lastSweep = startedAt;
    return result;
  };
}

/** The ids of this task queue's session workflows that closed without ending their session (since `after`, if given). */
async function closedSince(temporal: Client, taskQueue: string, after?: Date): Promise<Set<string>> {
  const query =
    `WorkflowType = '${SESSION_WORKFLOW_TYPE}' AND TaskQueue = '${taskQueue}' ` +
    `AND ExecutionStatus IN ('Terminated', 'Failed', 'TimedOut', 'Canceled')` +
    (after ? ` AND CloseTime > '${after.toISOString()}'` : '');
  const ids = new Set<string>(); // a workflow id comes once per closed run
  for await (const run of temporal.workflow.list({ query })) ids.add(run.workflowId);
  return ids;
}

/** Settles one session; false when a run of its workflow still owns it, or another task queue's does. */
async function settle(temporal: Client, sandboxes: SandboxProvider, taskQueue: string, { id, status }: { id: string; status: string }): Promise<boolean> {
  // A reset may have started a newer run: that one owns the session. None left: Temporal's
  // retention dropped the history of one that closed long ago.
  const latest = await temporal.workflow.getHandle(id).describe().catch((err: unknown) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  if (latest?.status.name === 'RUNNING' || (latest && latest.taskQueue !== taskQueue)) return false;
  if (status === 'ended') {
    await sandboxes.destroy(id);
    await db().session.update({ where: { id }, data: { sandboxState: 'removed' } });
    await appendEvents(id, [{ key: 'session.ended', type: 'session.status', data: { status: 'ended', sandbox: 'removed' } }]);
    return true;
  }
  if (!latest) return false; // not deleted, and nothing left to say why its workflow closed: it stays as it is
  await sandboxes.hibernate(id);
  await db().session.update({ where: { id }, data: { status: 'failed', sandboxState: 'hibernated' } });
  const reason = `its workflow is ${latest.status.name.toLowerCase().replace('_', ' ')}`; // terminated, failed, timed out
  await appendEvents(id, [{ key: 'session.failed', type: 'session.status', data: { status: 'failed', sandbox: 'hibernated', reason } }]);
  return true;
}

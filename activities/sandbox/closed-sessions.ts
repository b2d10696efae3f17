// Sessions whose workflow closed without ending them: terminated by an operator (Temporal Web UI or
// CLI), failed or timed out. No workflow does their bookkeeping any more, so each worker sweeps for
// them now and then: the sandbox is stopped (the workspace kept) and the session marked failed; once
// its owner deletes it (the API marks the row ended), the sandbox and workspace are removed, as
// DELETE does for a live session.
import type { Client } from '@temporalio/client';
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
 * Stops or removes the sandbox of each session on this task queue (the sessions whose sandboxes
 * this worker's provider holds) whose workflow closed without ending it.
 */
export async function settleClosedSessions(temporal: Client, sandboxes: SandboxProvider, taskQueue: string): Promise<SweepResult> {
  const query =
    `WorkflowType = '${SESSION_WORKFLOW_TYPE}' AND TaskQueue = '${taskQueue}' ` +
    `AND ExecutionStatus IN ('Terminated', 'Failed', 'TimedOut', 'Canceled')`;
  const ids = new Set<string>(); // a workflow id comes once per closed run
  for await (const run of temporal.workflow.list({ query })) ids.add(run.workflowId);
  // One read for all of them, of those not settled already (most were, by an earlier sweep).
  const unsettled = ids.size === 0 ? [] : await db().session.findMany({
    where: { id: { in: [...ids] }, sandboxState: { not: 'removed' }, OR: [{ status: { not: 'failed' } }, { sandboxState: 'running' }] },
    select: { id: true, status: true },
  });
  const result: SweepResult = { settled: [], failed: [] };
  for (const row of unsettled) {
    try {
      if (await settle(temporal, sandboxes, row)) result.settled.push(row.id);
    } catch (err) {
      result.failed.push({ session: row.id, err });
    }
  }
  return result;
}

/** Settles one session; false when a newer run of its workflow owns it. */
async function settle(temporal: Client, sandboxes: SandboxProvider, { id, status }: { id: string; status: string }): Promise<boolean> {
  // A reset may have started a newer run: that one owns the session.
  const latest = await temporal.workflow.getHandle(id).describe();
  if (latest.status.name === 'RUNNING') return false;
  if (status === 'ended') {
    await sandboxes.destroy(id);
    await db().session.update({ where: { id }, data: { sandboxState: 'removed' } });
    await appendEvents(id, [{ key: 'session.ended', type: 'session.status', data: { status: 'ended', sandbox: 'removed' } }]);
  } else {
    await sandboxes.hibernate(id);
    await db().session.update({ where: { id }, data: { status: 'failed', sandboxState: 'hibernated' } });
    const reason = `its workflow is ${latest.status.name.toLowerCase().replace('_', ' ')}`; // terminated, failed, timed out
    await appendEvents(id, [{ key: 'session.failed', type: 'session.status', data: { status: 'failed', sandbox: 'hibernated', reason } }]);
  }
  return true;
}

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
  const result: SweepResult = { settled: [], failed: [] };
  for await (const run of temporal.workflow.list({ query })) {
    const id = run.workflowId;
    try {
      if (await settle(temporal, sandboxes, id)) result.settled.push(id);
    } catch (err) {
      result.failed.push({ session: id, err });
    }
  }
  return result;
}

/** Settles one session; false when there was nothing to do. */
async function settle(temporal: Client, sandboxes: SandboxProvider, id: string): Promise<boolean> {
  const row = await db().session.findUnique({ where: { id }, select: { status: true, sandboxState: true } });
  if (!row || row.sandboxState === 'removed' || (row.status === 'failed' && row.sandboxState !== 'running')) return false;
  // A reset (or a start under the same id) may have a newer run going: that one owns the session.
  const latest = await temporal.workflow.getHandle(id).describe();
  if (latest.status.name === 'RUNNING') return false;
  if (row.status === 'ended') {
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

// Sessions whose workflow never started: the web process that created the row died, or lost
// Temporal, before it could start the workflow, on a request without an Idempotency-Key (a retry
// with one finishes the job: api/idempotency.ts). Nothing would ever answer their messages, yet they
// would show as active for good. Web processes look for them now and then among recent sessions
// nothing has happened in yet, and mark those without a workflow failed.
import type { Client } from '@temporalio/client';
import { db } from '../lib/db.ts';
import { appendEvents } from '../lib/events.ts';
import { workflowStarted } from './temporal.ts';

/** How far back a look goes (each web process looks hourly and at its start). */
const LOOK_BACK_MS = 2 * 60 * 60 * 1000;
const REASON = 'its workflow never started: the request that created it did not finish';

/** Marks failed the sessions created before `createdBefore` (and within LOOK_BACK_MS of it) that have no workflow; returns their ids. */
export async function failUnstartedSessions(temporal: Client, createdBefore: Date): Promise<string[]> {
  const untouched = { status: 'active', sandboxState: 'none', lastEventSeq: 0 };
  const rows = await db().session.findMany({
    where: { ...untouched, createdAt: { lt: createdBefore, gte: new Date(createdBefore.getTime() - LOOK_BACK_MS) } },
    select: { id: true },
  });
  const failed: string[] = [];
  for (const { id } of rows) {
    if (await workflowStarted(temporal, id)) continue;
    const { count } = await db().session.updateMany({ where: { id, ...untouched }, data: { status: 'failed' } });
    if (count === 0) continue;
    await appendEvents(id, [{ key: 'session.failed', type: 'session.status', data: { status: 'failed', sandbox: 'none', reason: REASON } }]);
    failed.push(id);
  }
  return failed;
}

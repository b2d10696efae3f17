// At worker start: the sessions whose row shows a running sandbox that is in fact stopped are told so
// (sandboxStoppedSignal), so an idle one shows as hibernated at once rather than after its idle timeout.
// Local sandboxes stop without their workflows when `npm start` shuts down, and when the host reboots.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { db } from '../../lib/db.ts';
import { sandboxStoppedSignal } from '../../workflows/messages.ts';
import type { SandboxProvider } from './provider.ts';

/**
 * Signals each active session whose sandbox the database shows running but this worker's provider
 * holds stopped; returns their ids. A sandbox it does not hold at all ('none') is another data dir's.
 */
export async function reportStoppedSandboxes(temporal: Client, sandboxes: SandboxProvider): Promise<string[]> {
  const rows = await db().session.findMany({
    where: { sandboxState: 'running', status: 'active' },
    select: { id: true },
  });
  const reported: string[] = [];
  for (const { id } of rows) {
    if ((await sandboxes.state(id)) !== 'stopped') continue;
    try {
      await temporal.workflow.getHandle(id).signal(sandboxStoppedSignal);
      reported.push(id);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err; // its workflow is gone: nothing to tell
    }
  }
  return reported;
}

// Splits "HTTP accept → gateway request" by the session workflow's own history, whose event times
// the Temporal server stamps (same machine, same wall clock as the bench):
// - accept → the update's workflow task started: the server's routing, plus waiting for the task
//   before it (the previous turn's last activity completing, when messages follow each other closely);
// - that workflow task, started → completed: the worker's activation and its round trip;
// - model step scheduled → gateway request: dispatch to the worker and the step's reads before it calls.
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { summary } from './stats.ts';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const at = (e: HistoryEvent) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;

/** turns: each measured turn's HTTP accept and gateway request times (ms since the epoch). */
export async function temporalSplit(address: string, workflowId: string, turns: { accepted: number; sent: number }[]) {
  const connection = await Connection.connect({ address });
  try {
    const history = await new Client({ connection }).workflow.getHandle(workflowId).fetchHistory();
    const events = history.events ?? [];
    const split = { toTaskStarted: [] as number[], task: [] as number[], stepToGateway: [] as number[] };
    for (const { accepted, sent } of turns) {
      const i = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes && at(e) >= accepted);
      if (i < 0) continue;
      // The accepted update follows its workflow task's scheduled, started and completed events.
      const before = events.slice(0, i);
      const started = before.findLast((e) => e.workflowTaskStartedEventAttributes);
      const completed = before.findLast((e) => e.workflowTaskCompletedEventAttributes);
      const scheduled = events.slice(i).find((e) => e.activityTaskScheduledEventAttributes);
      if (!started || !completed || !scheduled) continue;
      split.toTaskStarted.push(at(started) - accepted);
      split.task.push(at(completed) - at(started));
      split.stepToGateway.push(sent - at(scheduled));
    }
    return {
      accept_to_update_task_started_ms: summary(split.toTaskStarted),
      update_task_started_to_completed_ms: summary(split.task),
      model_step_scheduled_to_gateway_request_ms: summary(split.stepToGateway),
    };
  } finally {
    await connection.close();
  }
}

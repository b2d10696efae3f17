// The glue between HTTP and the session workflow: start it (optionally with the first message as
// update-with-start), send messages as updates, end and abort it; and map workflow failures to
// HTTP errors. Update ids come from the caller's Idempotency-Key, so a retried request is one message.
import { randomUUID } from 'node:crypto';
import {
  WithStartWorkflowOperation,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
  type WorkflowStartOptions,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import { sessionLimits, type Config } from '../lib/config.ts';
import type { Agent } from '../lib/generated/prisma/client.ts';
import type { SessionInput, ToolName } from '../lib/types.ts';
import {
  INVALID_MESSAGE,
  QUEUE_FULL,
  SESSION_CLOSED,
  SESSION_WORKFLOW_TYPE,
  abortSignal,
  endSessionUpdate,
  searchAttributes,
  sendMessageUpdate,
  type SendMessageResult,
} from '../workflows/messages.ts';
import { ApiError, sessionEnded } from './errors.ts';

/** The deadline of a Temporal call (and the client's retries of it) made now: after it, the API answers 503. */
export const deadline = (config: Config) => Date.now() + config.BERTH_TEMPORAL_DEADLINE_S * 1000;

export function workflowUrl(config: Config, sessionId: string): string {
  return `${config.TEMPORAL_UI_URL.replace(/\/$/, '')}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(sessionId)}`;
}

/** The workflow input: a snapshot of the agent and the limits. (The worker adds CONTAINER_ENV_X as X to every sandbox.) */
export function sessionInput(config: Config, sessionId: string, agent: Agent): SessionInput {
  return {
    sessionId,
    agent: {
      id: agent.id,
      teamId: agent.teamId,
      name: agent.name,
      model: agent.model,
      systemPrompt: agent.systemPrompt,
      tools: agent.tools as ToolName[],
      env: agent.env as Record<string, string>,
    },
    limits: sessionLimits(config),
  };
}

function startOptions(config: Config, input: SessionInput) {
  return {
    workflowId: input.sessionId,
    // A session's id names one workflow: once closed it is never started again (a retried create finds it).
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    taskQueue: config.BERTH_TASK_QUEUE,
    args: [input],
    staticSummary: `${input.agent.name} (${input.agent.model})`,
    typedSearchAttributes: [
      { key: searchAttributes.agentId, value: input.agent.id },
      { key: searchAttributes.teamId, value: input.agent.teamId },
      { key: searchAttributes.status, value: 'active' },
    ],
  } satisfies WorkflowStartOptions;
}

/** Starts the session workflow; with a first message, as one update-with-start. */
export async function startSession(
  temporal: Client,
  config: Config,
  input: SessionInput,
  first?: { content: string; updateId?: string },
): Promise<SendMessageResult | null> {
  const options = startOptions(config, input);
  if (!first) {
    await temporal.withDeadline(deadline(config), () => temporal.workflow.start(SESSION_WORKFLOW_TYPE, options)).catch((err: unknown) => {
      // Started by a first run of this request (same Idempotency-Key, same id) that died before answering.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    });
    return null;
  }
  const startWorkflowOperation = new WithStartWorkflowOperation(SESSION_WORKFLOW_TYPE, {
    ...options,
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return withUpdateErrors(input.sessionId, () =>
    temporal.withDeadline(deadline(config), () =>
      temporal.workflow.executeUpdateWithStart(sendMessageUpdate, {
        args: [{ content: first.content }],
        updateId: first.updateId ?? randomUUID(),
        startWorkflowOperation,
      }),
    ),
  );
}

export function sendMessage(temporal: Client, config: Config, sessionId: string, content: string, updateId: string | undefined) {
  const handle = temporal.workflow.getHandle(sessionId);
  return withUpdateErrors(sessionId, () =>
    temporal.withDeadline(deadline(config), () =>
      handle.executeUpdate(sendMessageUpdate, { args: [{ content }], updateId: updateId ?? randomUUID() }),
    ),
  );
}

/** Ends the session; false when its workflow was no longer running. */
export async function endSession(temporal: Client, config: Config, sessionId: string): Promise<boolean> {
  const handle = temporal.workflow.getHandle(sessionId);
  try {
    await withUpdateErrors(sessionId, () =>
      temporal.withDeadline(deadline(config), () => handle.executeUpdate(endSessionUpdate, { args: [] })),
    );
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    if (err instanceof ApiError && err.code === 'session_ended') return false;
    throw err;
  }
}

/** Whether the session's workflow was ever started (it may have closed since). */
export async function workflowStarted(temporal: Client, sessionId: string): Promise<boolean> {
  try {
    await temporal.workflow.getHandle(sessionId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/** Signals abort; false when the workflow was no longer running. */
export async function abortSession(temporal: Client, sessionId: string, reason: string | undefined): Promise<boolean> {
  try {
    await temporal.workflow.getHandle(sessionId).signal(abortSignal, reason === undefined ? {} : { reason });
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/** Maps the validator's rejections to HTTP errors; WorkflowNotFoundError passes through for the caller. */
async function withUpdateErrors<T>(sessionId: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === SESSION_CLOSED) throw sessionEnded(sessionId);
    if (cause instanceof ApplicationFailure && cause.type === INVALID_MESSAGE) {
      throw new ApiError(400, 'invalid_request', cause.message, [{ path: 'content', message: cause.message }]);
    }
    if (cause instanceof ApplicationFailure && cause.type === QUEUE_FULL) throw new ApiError(409, 'queue_full', cause.message);
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
      throw new ApiError(503, 'session_unavailable', 'the session did not answer in time; retry with the same Idempotency-Key');
    }
    throw err;
  }
}

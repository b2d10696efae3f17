// The session workflow's public surface: updates, signals, queries and search attributes. The API
// imports these definitions to talk to a session; workflows/session.ts implements them.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { SandboxState, SessionStatus } from '../lib/types.ts';

export interface SendMessageInput {
  content: string;
}
export interface SendMessageResult {
  messageId: string;
  seq: number;
  /** The turn this message will be answered in. */
  turn: number;
}

/**
 * Enqueue a user message. Rejected (before reaching history) when the session has ended, the message
 * is empty, or the messages waiting would pass MAX_WAITING_BYTES.
 */
export const sendMessageUpdate = defineUpdate<SendMessageResult, [SendMessageInput]>('sendMessage');
/** End the session: finish after the current turn is cancelled, and remove the sandbox. */
export const endSessionUpdate = defineUpdate<{ ended: true }, []>('endSession');
/** Cancel the running turn (if any). Queued messages stay queued. */
export const abortSignal = defineSignal<[{ reason?: string }]>('abort');
/**
 * The session's sandbox stopped without the workflow: `npm start` stops local sandboxes when it shuts
 * down, and the next worker tells the sessions whose sandbox it finds stopped. An idle session records
 * it as hibernated at once instead of showing a running sandbox until its idle timeout.
 */
export const sandboxStoppedSignal = defineSignal<[]>('sandboxStopped');

export interface SessionSnapshot {
  status: SessionStatus;
  sandbox: SandboxState;
  /** The turn being run now, or null when idle. */
  runningTurn: number | null;
  queued: number;
  turnsCompleted: number;
}
export const snapshotQuery = defineQuery<SessionSnapshot>('snapshot');

/** Failure types the update validator raises; the API maps them to HTTP statuses. */
export const SESSION_CLOSED = 'SessionClosed';
export const INVALID_MESSAGE = 'InvalidMessage';
export const QUEUE_FULL = 'QueueFull';

/**
 * The most text (UTF-8 bytes) the messages waiting for their turn may hold together, this one
 * included. A continue-as-new carries them, beside the agent (at most BERTH_MAX_BODY_BYTES, 1 MiB), in
 * one payload, and Temporal terminates a workflow whose payload passes 2 MB.
 */
export const MAX_WAITING_BYTES = 512 * 1024;

// Search attributes an operator can filter on: `temporal workflow list --query "BerthStatus='active'"`.
export const searchAttributes = {
  agentId: defineSearchAttributeKey('BerthAgentId', SearchAttributeType.KEYWORD),
  teamId: defineSearchAttributeKey('BerthTeamId', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('BerthStatus', SearchAttributeType.KEYWORD),
};
export const SEARCH_ATTRIBUTE_FLAGS = ['BerthAgentId=Keyword', 'BerthTeamId=Keyword', 'BerthStatus=Keyword'];

export const SESSION_WORKFLOW_TYPE = 'sessionWorkflow';

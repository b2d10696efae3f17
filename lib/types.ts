// Types shared by the workflow, the activities and the API. Plain data only: this file is imported
// by workflow code, so it must stay free of I/O and Node built-ins.

export const TOOL_NAMES = ['bash', 'read_file', 'write_file', 'edit_file', 'list_files'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

/** The agent as a session sees it: a snapshot taken when the session starts. */
export interface AgentSpec {
  id: string;
  teamId: string;
  name: string;
  model: string;
  systemPrompt: string;
  tools: ToolName[];
  env: Record<string, string>;
}

export type SessionStatus = 'active' | 'hibernated' | 'ended' | 'failed';
export type SandboxState = 'none' | 'starting' | 'running' | 'hibernated' | 'recreating' | 'removed';
export type TurnOutcome = 'completed' | 'failed' | 'aborted';

export interface QueuedMessage {
  messageId: string;
  seq: number;
  content: string;
}

export interface SessionLimits {
  idleTimeoutS: number;
  maxSteps: number;
  toolTimeoutS: number;
  heartbeatTimeoutS: number;
  /** Continue-as-new once history has this many events, even if Temporal has not suggested it. */
  continueAsNewEvents: number;
}

/** The small state a session carries across continue-as-new. The transcript lives in Postgres. */
export interface CarriedState {
  nextSeq: number;
  turn: number;
  queue: QueuedMessage[];
  sandbox: SandboxState;
  /** The last answers to sendMessage by update id (Idempotency-Key), oldest first. */
  answered?: [string, { messageId: string; seq: number; turn: number }][];
  /** Where the model's context starts, once the whole transcript no longer fits its window. */
  contextFrom?: ContextStart;
}

/**
 * Where the model's context starts when the whole transcript no longer fits its window: rows before
 * (turn, seq) are left out, except that turn's user message (activities/model/context.ts).
 */
export interface ContextStart {
  turn: number;
  seq: number;
  /** Set once even that turn's latest step did not fit: its tool results are cut to this many characters. */
  toolResultChars?: number;
}

export interface SessionInput {
  sessionId: string;
  agent: AgentSpec;
  limits: SessionLimits;
  carried?: CarriedState;
}

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text exactly as the model produced it. */
  arguments: string;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface ModelStepResult {
  content: string;
  toolCalls: ToolCall[];
  usage: Usage;
  /** Set when the step had to leave the start of the transcript out of the context (see CarriedState). */
  contextFrom?: ContextStart;
}

export interface ToolResult {
  output: string;
  isError: boolean;
}

export type SessionEventType =
  | 'message.created'
  | 'message.delta'
  | 'tool.started'
  | 'tool.output'
  | 'tool.finished'
  | 'turn.completed'
  | 'turn.failed'
  | 'turn.aborted'
  | 'session.status'
  | 'step.retry'
  | 'credential.used'
  | 'egress.blocked';

/** An event as an activity writes it. `key` makes a retried write a no-op. */
export interface NewSessionEvent {
  key: string;
  type: SessionEventType;
  data: Record<string, unknown>;
}

export interface SessionEvent {
  seq: number;
  type: SessionEventType;
  data: Record<string, unknown>;
}

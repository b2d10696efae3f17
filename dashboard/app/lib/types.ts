// The API's shapes as the dashboard reads them (see GET /v1/openapi.json).

export const TOOL_NAMES = ['bash', 'read_file', 'write_file', 'edit_file', 'list_files'] as const;
export const SESSION_STATUSES = ['active', 'hibernated', 'ended', 'failed'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

export interface Agent {
  id: string;
  name: string;
  model: string;
  system_prompt: string;
  tools: string[];
  env: Record<string, string>;
  /** Present once the vault exists. */
  credential_ids?: string[];
  egress?: { allow: string[]; deny: string[] };
  created_at: string;
  updated_at: string;
}

export interface Credential {
  id: string;
  name: string;
  hosts: string[];
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface Session {
  id: string;
  agent_id: string;
  status: SessionStatus;
  sandbox_state: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  workflow_url: string;
  created_at: string;
  updated_at: string;
  ended_at: string | null;
}

export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface Message {
  id: string;
  seq: number;
  turn: number;
  role: 'user' | 'assistant' | 'tool';
  content: string;
  tool_calls: ToolCall[] | null;
  tool_call_id: string | null;
  tool_name: string | null;
}

export interface Overview {
  active_sessions: number;
  hibernated_sessions: number;
  live_sandboxes: number;
  turns_last_hour: number;
  failed_turns_last_hour: number;
  recent_failures: { session_id: string; agent_id: string; turn: number | null; error: string; at: string }[];
}

export interface Interception {
  id: string;
  at: string;
  host: string;
  method: string;
  path: string;
  credential: string | null;
  decision: 'swapped' | 'blocked';
  rule: string;
}

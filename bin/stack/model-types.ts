// The slice of the OpenAI chat-completions format the embedded model server speaks.

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content?: string | null | Array<{ type: string; text?: string }>;
  tool_calls?: ChatToolCall[];
  tool_call_id?: string;
  name?: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  tools?: Array<{ type: 'function'; function: { name: string; description?: string; parameters?: unknown } }>;
  [key: string]: unknown;
}

export interface ReplyToolCall {
  /** Defaults to a deterministic id derived from the request. */
  id?: string;
  name: string;
  arguments: Record<string, unknown> | string;
}

/** What a responder decides; the server turns it into an OpenAI response or stream. */
export interface Reply {
  text?: string;
  tool_calls?: ReplyToolCall[];
  /** Stream the text in exactly these pieces (their concatenation replaces `text`). */
  chunks?: string[];
  /** Pause between streamed chunks. */
  chunk_delay_ms?: number;
  /** Answer with this HTTP error instead (an OpenAI-style error body). */
  error?: { status: number; message: string };
}

export type Responder = (request: ChatRequest) => Reply;

/** Plain text of a message's content (string or content parts). */
export function contentText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (!content) return '';
  return content.map((p) => p.text ?? '').join('');
}

/** The conversation since the last user message: that message and how many model steps followed it. */
export function turnPosition(messages: ChatMessage[]): { lastUser: string; assistantSteps: number; last?: ChatMessage } {
  let lastUserIdx = -1;
  messages.forEach((m, i) => {
    if (m.role === 'user') lastUserIdx = i;
  });
  const after = messages.slice(lastUserIdx + 1);
  return {
    lastUser: lastUserIdx >= 0 ? contentText(messages[lastUserIdx]!.content) : '',
    assistantSteps: after.filter((m) => m.role === 'assistant').length,
    last: messages[messages.length - 1],
  };
}

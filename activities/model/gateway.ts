// A streaming client for the LiteLLM gateway's OpenAI-compatible /v1/chat/completions.
import { ApplicationFailure } from '@temporalio/activity';
import type { ToolCall, Usage } from '../../lib/types.ts';

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[] }
  | { role: 'tool'; tool_call_id: string; content: string };

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  tools?: unknown[];
}

export interface StreamedReply {
  content: string;
  toolCalls: ToolCall[];
  usage: Usage;
}

/** The messages do not fit the model's context window (LiteLLM's ContextWindowExceededError, OpenAI's code). */
export class ContextWindowExceeded extends Error {}

interface Chunk {
  choices?: {
    delta?: { content?: string | null; tool_calls?: { index: number; id?: string; function?: { name?: string; arguments?: string } }[] };
    finish_reason?: string | null;
  }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
}

/**
 * Streams one completion, calling onText for each piece of text. A 4xx other than 408/429 means the
 * request itself is wrong (unknown model, bad key): non-retryable; a context too long for the model
 * is ContextWindowExceeded, for the caller to shorten. Anything else is left to retries.
 */
export async function streamChat(
  gateway: { url: string; apiKey?: string },
  body: ChatRequest,
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<StreamedReply> {
  const res = await fetch(new URL('/v1/chat/completions', gateway.url), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(gateway.apiKey ? { authorization: `Bearer ${gateway.apiKey}` } : {}),
    },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!res.ok || !res.body) {
    const text = (await res.text().catch(() => '')).slice(0, 500);
    const message = `model gateway answered ${res.status}: ${text}`;
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
      if (/ContextWindowExceededError|context_length_exceeded/.test(text)) throw new ContextWindowExceeded(message);
      throw ApplicationFailure.create({ type: 'ModelRequestRejected', message, nonRetryable: true });
    }
    throw new Error(message);
  }

  let content = '';
  const calls: { id: string; name: string; arguments: string }[] = [];
  const usage: Usage = { promptTokens: 0, completionTokens: 0 };
  const decoder = new TextDecoder();
  let buffer = '';
  // With include_usage, the chunk that carries usage after the finish reason is the stream's last
  // (the OpenAI stream format): the reply is complete there. LiteLLM sends [DONE] only after its own
  // bookkeeping, milliseconds later; that rest is read in the background, which frees the connection.
  let finished = false;
  let complete = false;
  const reader = res.body.getReader();
  while (!complete) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') continue;
      const chunk = JSON.parse(data) as Chunk;
      const choice = chunk.choices?.[0];
      if (choice?.finish_reason) finished = true;
      if (chunk.usage) {
        usage.promptTokens = chunk.usage.prompt_tokens ?? 0;
        usage.completionTokens = chunk.usage.completion_tokens ?? 0;
        complete = finished;
      }
      const delta = choice?.delta;
      if (delta?.content) {
        content += delta.content;
        onText(delta.content);
      }
      for (const tc of delta?.tool_calls ?? []) {
        const call = (calls[tc.index] ??= { id: '', name: '', arguments: '' });
        if (tc.id) call.id = tc.id;
        if (tc.function?.name) call.name += tc.function.name;
        if (tc.function?.arguments) call.arguments += tc.function.arguments;
      }
    }
  }
  if (complete) void drain(reader);
  const toolCalls = calls.filter(Boolean).map((c, i) => ({ ...c, id: c.id || `call_${i}` }));
  return { content, toolCalls, usage };
}

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  try {
    while (!(await reader.read()).done);
  } catch {
    // the connection broke after the reply was complete: nothing of it is lost
  }
}

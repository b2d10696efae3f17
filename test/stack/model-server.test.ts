// The embedded model server, read with the official OpenAI SDK: streaming shape, tool calls,
// usage in the final chunk, the demo model's rules, and replies that are a pure function of the request.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServerHandle } from '../../bin/stack/model-server.ts';
import type { ChatRequest } from '../../bin/stack/model-types.ts';

let server: ModelServerHandle;
let client: OpenAI;
const root = () => server.url.replace(/\/v1$/, '');
const put = (model: string, script: unknown) =>
  fetch(`${root()}/__scripts/${model}`, { method: 'PUT', body: JSON.stringify(script) });

beforeAll(async () => {
  server = await startModelServer({ port: 0, scripted: true });
  client = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server.stop());

const tools = ['bash', 'read_file', 'write_file', 'edit_file', 'list_files'].map((name) => ({
  type: 'function' as const,
  function: { name, parameters: { type: 'object' } },
}));

async function collect(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  let pieces = 0;
  const calls: Array<{ id?: string; name: string; arguments: string }> = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta.content) {
      text += choice.delta.content;
      pieces++;
    }
    for (const tc of choice.delta.tool_calls ?? []) {
      calls[tc.index] ??= { name: '', arguments: '' };
      const call = calls[tc.index]!;
      if (tc.id) call.id = tc.id;
      if (tc.function?.name) call.name += tc.function.name;
      if (tc.function?.arguments) call.arguments += tc.function.arguments;
    }
    finish = choice.finish_reason ?? finish;
  }
  return { text, finish, usage, calls, pieces };
}

describe('scripted model', () => {
  it('streams text in the given chunks, then tool calls, with usage in a final chunk', async () => {
    expect((await put('stream-a', [{ chunks: ['Hel', 'lo ', 'there'], tool_calls: [{ name: 'bash', arguments: { command: 'ls -la' } }] }, { text: 'all done' }])).status).toBe(204);
    const stream = await client.chat.completions.create({
      model: 'stream-a', stream: true, stream_options: { include_usage: true }, tools,
      messages: [{ role: 'user', content: 'list files' }],
    });
    const out = await collect(stream);
    expect(out.text).toBe('Hello there');
    expect(out.pieces).toBe(3);
    expect(out.finish).toBe('tool_calls');
    expect(out.calls).toHaveLength(1);
    expect(out.calls[0]!.name).toBe('bash');
    expect(JSON.parse(out.calls[0]!.arguments)).toEqual({ command: 'ls -la' });
    expect(out.calls[0]!.id).toMatch(/^call_/);
    expect(out.usage!.total_tokens).toBe(out.usage!.prompt_tokens + out.usage!.completion_tokens);
    expect(out.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('picks the step by the number of assistant messages since the last user message', async () => {
    await put('steps-b', [{ tool_calls: [{ name: 'write_file', arguments: { path: 'a.txt', content: 'x' } }] }, { text: 'second step' }]);
    const first = await client.chat.completions.create({ model: 'steps-b', messages: [{ role: 'user', content: 'go' }] });
    const call = first.choices[0]!.message.tool_calls![0]!;
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    const second = await client.chat.completions.create({
      model: 'steps-b',
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: 'written' },
      ],
    });
    expect(second.choices[0]!.message.content).toBe('second step');
    expect(second.choices[0]!.finish_reason).toBe('stop');
    expect(second.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
  });

  it('chooses rules by a match on the last user message', async () => {
    await put('rules-c', { rules: [{ match: 'weather', steps: [{ text: 'sunny' }] }, { steps: [{ text: 'no idea' }] }] });
    const ask = async (content: string) =>
      (await client.chat.completions.create({ model: 'rules-c', messages: [{ role: 'user', content }] })).choices[0]!.message.content;
    expect(await ask('what is the weather?')).toBe('sunny');
    expect(await ask('hello')).toBe('no idea');
  });

  it('answers a repeated request identically (a retried activity gets the same reply)', async () => {
    await put('pure-d', [{ chunks: ['a', 'b'], tool_calls: [{ name: 'bash', arguments: { command: 'date' } }] }]);
    const body = { model: 'pure-d', stream: true, messages: [{ role: 'user', content: 'same' }] };
    const raw = async () => {
      const res = await fetch(`${server.url}/chat/completions`, { method: 'POST', body: JSON.stringify(body) });
      return (await res.text()).replace(/"created":\d+/g, '');
    };
    const [a, b] = [await raw(), await raw()];
    expect(a).toBe(b);
    expect(a).toContain('"finish_reason":"tool_calls"');
    expect(a.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('records every request for the test to inspect', async () => {
    await put('rec-e', [{ text: 'ok' }]);
    await client.chat.completions.create({ model: 'rec-e', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'ping' }], tools });
    const seen = (await (await fetch(`${root()}/__requests/rec-e`)).json()) as ChatRequest[];
    expect(seen).toHaveLength(1);
    expect(seen[0]!.messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(seen[0]!.tools!.map((t) => t.function.name)).toEqual(tools.map((t) => t.function.name));
  });

  it('pauses chunk_delay_ms between chunks', async () => {
    await put('slow-f', [{ chunks: ['1', '2', '3', '4'], chunk_delay_ms: 100 }]);
    const t0 = Date.now();
    const out = await collect(await client.chat.completions.create({ model: 'slow-f', stream: true, messages: [{ role: 'user', content: 'x' }] }));
    expect(out.text).toBe('1234');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
  });

  it('rejects a bad script and answers an unknown model with an OpenAI-style 404', async () => {
    const bad = await put('bad-g', [{ text: 'x', unknown_field: 1 }]);
    expect(bad.status).toBe(400);
    await expect(client.chat.completions.create({ model: 'never-registered', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404 });
  });

  it('answers with a scripted HTTP error', async () => {
    await put('err-h', [{ error: { status: 503, message: 'overloaded' } }]);
    await expect(client.chat.completions.create({ model: 'err-h', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 503 });
  });
});

describe('berth-demo', () => {
  const ask = (messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[]) =>
    client.chat.completions.create({ model: 'berth-demo', messages, tools });

  it('introduces itself as a demo', async () => {
    const res = await ask([{ role: 'user', content: 'hello' }]);
    expect(res.choices[0]!.message.content).toContain('demo model');
    expect(res.choices[0]!.message.tool_calls).toBeUndefined();
  });

  it('maps its commands onto the builtin tools', async () => {
    const callFor = async (content: string) => {
      const call = (await ask([{ role: 'user', content }])).choices[0]!.message.tool_calls![0]!;
      return call.type === 'function' ? { name: call.function.name, args: JSON.parse(call.function.arguments) } : undefined;
    };
    expect(await callFor('$ echo hi')).toEqual({ name: 'bash', args: { command: 'echo hi' } });
    expect(await callFor('write notes.txt: hello world')).toEqual({ name: 'write_file', args: { path: 'notes.txt', content: 'hello world' } });
    expect(await callFor('read notes.txt')).toEqual({ name: 'read_file', args: { path: 'notes.txt' } });
    expect(await callFor('edit notes.txt: hello => bye')).toEqual({ name: 'edit_file', args: { path: 'notes.txt', old_string: 'hello', new_string: 'bye' } });
    expect(await callFor('ls src')).toEqual({ name: 'list_files', args: { path: 'src' } });
  });

  it('summarises a tool result', async () => {
    const res = await ask([
      { role: 'user', content: '$ echo hi' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'bash', arguments: '{"command":"echo hi"}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'hi\n' },
    ]);
    expect(res.choices[0]!.message.content).toContain('hi');
    expect(res.choices[0]!.message.tool_calls).toBeUndefined();
  });

  it('lists its model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain('berth-demo');
  });
});

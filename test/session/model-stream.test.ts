// The model step's stream reader (activities/model/gateway.ts) against an OpenAI-compatible server
// this test controls byte by byte: where a reply ends, and that the connection is used again.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { streamChat } from '../../activities/model/gateway.ts';

const chunk = (choice: object | null, usage?: object) =>
  `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: choice ? [{ index: 0, ...choice }] : [], ...(usage ? { usage } : {}) })}\n\n`;
const USAGE = { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 };

interface Held {
  /** Ends the response that is being held open, with [DONE]. */
  release(): void;
}

let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** Serves each request with `body`, then holds the response open until released. */
async function holdingServer(body: string) {
  const held: Held[] = [];
  let connections = 0;
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(body);
      held.push({ release: () => res.end('data: [DONE]\n\n') });
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, held, connections: () => connections };
}

const ask = (url: string) =>
  streamChat({ url }, { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, () => undefined, new AbortController().signal);

describe('model stream', () => {
  it('ends the reply at the usage chunk after the finish reason, and reuses the connection', async () => {
    const body =
      chunk({ delta: { role: 'assistant', content: '' } }) +
      chunk({ delta: { content: 'Hello ' } }) +
      chunk({ delta: { content: 'there' } }) +
      chunk({ delta: {}, finish_reason: 'stop' }) +
      chunk({ delta: {} }, USAGE);
    const srv = await holdingServer(body);
    // The server has not ended the stream: the reply comes back anyway.
    const reply = await ask(srv.url);
    expect(reply).toEqual({ content: 'Hello there', toolCalls: [], usage: { promptTokens: 9, completionTokens: 2 } });
    expect(srv.held).toHaveLength(1);

    // The rest of the stream is read in the background: the connection stays open for the next reply.
    srv.held[0]!.release();
    await new Promise((r) => setTimeout(r, 300));
    expect(await ask(srv.url)).toEqual(reply);
    expect(srv.connections()).toBe(1);
    srv.held[1]!.release();
  });

  it('ends a tool call reply the same way', async () => {
    const body =
      chunk({ delta: { tool_calls: [{ index: 0, id: 'call_1', function: { name: 'bash', arguments: '{"command":' } }] } }) +
      chunk({ delta: { tool_calls: [{ index: 0, function: { arguments: '"ls"}' } }] } }) +
      chunk({ delta: {}, finish_reason: 'tool_calls' }, USAGE);
    const srv = await holdingServer(body);
    const reply = await ask(srv.url);
    expect(reply.toolCalls).toEqual([{ id: 'call_1', name: 'bash', arguments: '{"command":"ls"}' }]);
    expect(reply.usage).toEqual({ promptTokens: 9, completionTokens: 2 });
    srv.held[0]!.release();
  });

  it('reads to the end when usage comes before the finish reason', async () => {
    // Some servers put running usage on every chunk: only the end of the stream ends the reply.
    const srv = await holdingServer(chunk({ delta: { content: 'one ' } }, USAGE) + chunk({ delta: { content: 'two' } }, USAGE));
    let settled = false;
    const reply = ask(srv.url).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(settled).toBe(false);
    srv.held[0]!.release();
    expect((await reply).content).toBe('one two');
  });
});

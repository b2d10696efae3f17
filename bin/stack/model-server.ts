// An OpenAI-compatible model server (/v1/chat/completions, streaming or not, and /v1/models) in
// front of two responders: the berth-demo model for `npm start`, and the scripted model tests
// control over /__scripts/<model> and inspect over /__requests/<model>. Listens on 127.0.0.1 only.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { DEMO_MODEL, demoRespond } from './demo-model.ts';
import type { ChatRequest, ChatToolCall, Reply } from './model-types.ts';
import { ScriptStore, scriptKey } from './scripted-model.ts';

export interface ModelServerOptions {
  /** 0 picks a free port. */
  port: number;
  /** Serve the /__scripts and /__requests control endpoints (tests) or not (npm start). */
  scripted: boolean;
  /** Pause between streamed chunks when a reply sets none: the demo streams at a readable pace; 0 for tests and the benchmark. */
  chunkDelayMs?: number;
  /** Requests kept per model for /__requests (oldest dropped first). */
  recordLimit?: number;
  logPath?: string;
  /** Called when a completion request arrives and when its reply has been sent (the benchmark times the platform around the model). */
  observe?: { received(req: ChatRequest): void; replied(req: ChatRequest): void };
}

export interface ModelServerHandle {
  name: 'model-server';
  pid: number;
  port: number;
  /** Base URL including /v1, as an OpenAI client expects. */
  url: string;
  logPath?: string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const estimateTokens = (s: string) => Math.max(1, Math.ceil(s.length / 4));

export async function startModelServer(opts: ModelServerOptions): Promise<ModelServerHandle> {
  const scripts = new ScriptStore();
  const recorded = new Map<string, ChatRequest[]>();
  const recordLimit = opts.recordLimit ?? 1000;
  if (opts.logPath) fs.mkdirSync(path.dirname(opts.logPath), { recursive: true });
  const log = (line: string) => opts.logPath && fs.appendFile(opts.logPath, `${new Date().toISOString()} ${line}\n`, () => {});

  const respond = (req: ChatRequest): Reply => {
    if (req.model === DEMO_MODEL || req.model.endsWith(`/${DEMO_MODEL}`)) return demoRespond(req);
    if (opts.scripted) return scripts.respond(req);
    return { error: { status: 404, message: `unknown model ${req.model}; this server only serves ${DEMO_MODEL}` } };
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      log(`error ${err.message}`);
      if (!res.headersSent) sendJson(res, 500, { error: { message: err.message, type: 'server_error' } });
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const control = url.pathname.match(/^\/__(scripts|requests)\/(.+)$/);
    if (control && opts.scripted) {
      const model = scriptKey(decodeURIComponent(control[2]!));
      if (control[1] === 'scripts' && req.method === 'PUT') {
        try {
          scripts.set(model, JSON.parse(await readBody(req)));
        } catch (err) {
          return sendJson(res, 400, { error: { message: `bad script: ${(err as Error).message}` } });
        }
        return void res.writeHead(204).end();
      }
      if (control[1] === 'scripts' && req.method === 'DELETE') return void (scripts.delete(model), res.writeHead(204).end());
      if (control[1] === 'requests' && req.method === 'GET') return sendJson(res, 200, recorded.get(model) ?? []);
      if (control[1] === 'requests' && req.method === 'DELETE') return void (recorded.delete(model), res.writeHead(204).end());
    }
    if (url.pathname.replace(/^\/v1/, '') === '/models' && req.method === 'GET') {
      const ids = [DEMO_MODEL, ...(opts.scripted ? scripts.models() : [])];
      return sendJson(res, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'berth' })) });
    }
    if (url.pathname.replace(/^\/v1/, '') !== '/chat/completions' || req.method !== 'POST') {
      return sendJson(res, 404, { error: { message: `no route ${req.method} ${url.pathname}`, type: 'invalid_request_error' } });
    }
    let body: ChatRequest;
    try {
      body = JSON.parse(await readBody(req)) as ChatRequest;
      if (typeof body.model !== 'string' || !Array.isArray(body.messages)) throw new Error('model and messages are required');
    } catch (err) {
      return sendJson(res, 400, { error: { message: (err as Error).message, type: 'invalid_request_error' } });
    }
    opts.observe?.received(body);
    const key = scriptKey(body.model);
    const list = recorded.get(key) ?? [];
    list.push(body);
    if (list.length > recordLimit) list.shift();
    recorded.set(key, list);

    const reply = respond(body);
    log(`${body.model} stream=${Boolean(body.stream)} messages=${body.messages.length} -> ${reply.error ? `error ${reply.error.status}` : `${reply.tool_calls?.length ?? 0} tool calls`}`);
    if (reply.error) return sendJson(res, reply.error.status, { error: { message: reply.error.message, type: 'invalid_request_error' } });
    const completion = buildCompletion(body, reply);
    if (!body.stream) sendJson(res, 200, completion.full);
    else await streamCompletion(res, completion, body.stream_options?.include_usage === true, reply.chunk_delay_ms ?? opts.chunkDelayMs ?? 0);
    opts.observe?.replied(body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  log(`listening on 127.0.0.1:${port} (scripted=${opts.scripted})`);
  return {
    name: 'model-server',
    pid: process.pid,
    port,
    url: `http://127.0.0.1:${port}/v1`,
    logPath: opts.logPath,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface Completion {
  id: string;
  created: number;
  model: string;
  pieces: string[];
  toolCalls: ChatToolCall[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  full: unknown;
}

function buildCompletion(req: ChatRequest, reply: Reply): Completion {
  // Everything derives from the request, so a retried request gets the same ids.
  const digest = createHash('sha256').update(JSON.stringify([req.model, req.messages])).digest('hex');
  const text = reply.chunks ? reply.chunks.join('') : (reply.text ?? '');
  const pieces = reply.chunks ?? (text.match(/[\s\S]{1,24}(\s|$)|[\s\S]{1,24}/g) ?? []);
  const toolCalls: ChatToolCall[] = (reply.tool_calls ?? []).map((c, i) => ({
    id: c.id ?? `call_${digest.slice(0, 16)}_${i}`,
    type: 'function',
    function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) },
  }));
  const promptTokens = estimateTokens(JSON.stringify(req.messages));
  const completionTokens = estimateTokens(text + toolCalls.map((c) => c.function.arguments).join(''));
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  const id = `chatcmpl-${digest.slice(0, 24)}`;
  const created = Math.floor(Date.now() / 1000);
  const message = { role: 'assistant', content: text || null, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) };
  const full = {
    id, object: 'chat.completion', created, model: req.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: toolCalls.length ? 'tool_calls' : 'stop' }],
    usage,
  };
  return { id, created, model: req.model, pieces, toolCalls, usage, full };
}

async function streamCompletion(res: http.ServerResponse, c: Completion, includeUsage: boolean, delayMs: number): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    res.write(`data: ${JSON.stringify({ id: c.id, object: 'chat.completion.chunk', created: c.created, model: c.model, choices, ...extra })}\n\n`);
  const delta = (d: Record<string, unknown>, finish: string | null = null) => chunk([{ index: 0, delta: d, logprobs: null, finish_reason: finish }]);

  delta({ role: 'assistant', content: '' });
  for (const [i, piece] of c.pieces.entries()) {
    if (res.destroyed) return;
    if (delayMs > 0 && i > 0) await sleep(delayMs);
    delta({ content: piece });
  }
  for (const [index, call] of c.toolCalls.entries()) {
    if (delayMs > 0) await sleep(delayMs);
    delta({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] });
    delta({ tool_calls: [{ index, function: { arguments: call.function.arguments } }] });
  }
  delta({}, c.toolCalls.length ? 'tool_calls' : 'stop');
  if (includeUsage) chunk([], { usage: c.usage });
  res.end('data: [DONE]\n\n');
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

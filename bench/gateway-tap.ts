// A pass-through in front of the LiteLLM gateway that notes when each model request leaves the
// worker and when its streamed answer has fully come back, keyed by the request's last user
// message. With the scripted model's own marks it splits a turn's overhead into Berth's part and
// the gateway's part. It forwards bytes as they come and adds well under a millisecond.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChatRequest } from '../bin/stack/model-types.ts';

export interface TapMarks {
  /** The worker's request reached the gateway's door. */
  sent: number;
  /** The last byte of the gateway's answer left for the worker. */
  answered: number;
}

export const lastUserMessage = (req: Pick<ChatRequest, 'messages'>) =>
  String([...req.messages].reverse().find((m) => m.role === 'user')?.content ?? '');

// Hop-by-hop headers, and what fetch sets itself.
const NOT_FORWARDED = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

export async function startGatewayTap(gatewayUrl: string, now: () => number) {
  const marks = new Map<string, TapMarks>();
  // Forwarded with fetch (undici), whose idle sockets close before the gateway's keep-alive ends, so a
  // request never lands on a socket the gateway is closing.
  const forward = async (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => {
    const arrived = now();
    const headers = Object.entries(req.headers).flatMap(([k, v]) => (NOT_FORWARDED.has(k) || v === undefined ? [] : [[k, String(v)] as [string, string]]));
    const up = await fetch(new URL(req.url ?? '/', gatewayUrl), { method: req.method, headers, body: body.length ? new Uint8Array(body) : undefined });
    res.writeHead(up.status, Object.fromEntries([...up.headers].filter(([k]) => !NOT_FORWARDED.has(k) && k !== 'content-encoding')));
    const reader = up.body?.getReader();
    for (let r = await reader?.read(); r && !r.done; r = await reader!.read()) res.write(r.value);
    const answered = now();
    res.end();
    // Read only once it is all passed on, so the tap's own parsing delays nothing it measures.
    try {
      const parsed = JSON.parse(body.toString('utf8')) as ChatRequest;
      if (Array.isArray(parsed.messages)) marks.set(lastUserMessage(parsed), { sent: arrived, answered });
    } catch {
      // not a chat request
    }
  };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => void forward(req, Buffer.concat(parts), res).catch((err: Error) => {
      console.error(`gateway tap: ${req.method} ${req.url}: ${String(err.cause ?? err)}`);
      res.destroy(err);
    }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    marks,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

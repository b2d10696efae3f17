// One request from a sandbox to its destination: egress check, stub swap, upstream over verified TLS (or
// plain HTTP), response scrub. Bodies stream: rewritten only for a credential that opts in, watched for
// stubs on their way to hosts those stubs are not bound to.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction, Socket } from 'node:net';
import { Readable, pipeline } from 'node:stream';
import { decideEgress, type EgressContext, type EgressDecision } from './egress.ts';
import { StreamReplacer, boundTo, scrubHeaders, swapRequest, type Replacement, type SessionSecret } from './swap.ts';
import { SANDBOX_GATEWAY_HOST } from './paths.ts';
import type { Recorder } from './record.ts';
import type { Logger } from '../lib/log.ts';

export interface SessionView {
  sessionId: string;
  secrets: SessionSecret[];
  egress: EgressContext;
  /** Where SANDBOX_GATEWAY_HOST really leads. */
  gateway?: { host: string; port: number; tls: boolean };
}

export interface Target {
  host: string;
  port: number;
  tls: boolean;
  /** Set for a CONNECT tunnel: decided once when the tunnel opened. */
  decision?: EgressDecision & { allowed: true };
}

export interface ForwardDeps {
  recorder: Recorder;
  log: Logger;
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
}

/** Bodies up to this size are rewritten in memory (keeping Content-Length); larger ones stream chunked. */
const BUFFER_LIMIT = 1 << 20;

class StubHeadingElsewhere extends Error {}

/** The session is unknown or has ended: its sandbox gets nothing through. */
export class SessionUnavailable extends Error {
  override name = 'SessionUnavailable';
}

/** Pod mode: the worker has not bound a session to this pod's proxy yet, or (after a restart of the
 * sidecar) not yet pushed the bound session's view again; nothing is forwarded meanwhile. */
export class SessionNotBound extends Error {
  override name = 'SessionNotBound';
  constructor(
    readonly code: 'session_not_bound' | 'session_view_missing',
    message: string,
  ) {
    super(message);
  }
}

export function refusal(res: http.ServerResponse | Socket, status: number, code: string, message: string, rule: string): void {
  const body = JSON.stringify({ error: { code, message, details: { rule } } });
  const head =
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\nx-berth-rule: ${rule}\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`;
  if (res instanceof http.ServerResponse) {
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, { 'content-type': 'application/json', 'x-berth-rule': rule }).end(body);
  } else {
    res.end(head + body);
  }
}

function pinnedLookup(address: string, family: 4 | 6): LookupFunction {
  return (_host, opts, cb) => {
    if ((opts as { all?: boolean }).all) (cb as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    else cb(null, address, family);
  };
}

function pathOnly(p: string): string {
  const q = p.indexOf('?');
  return (q < 0 ? p : p.slice(0, q)).slice(0, 2048);
}

function authority(t: Target): string {
  const h = t.host.includes(':') ? `[${t.host}]` : t.host;
  return t.port === (t.tls ? 443 : 80) ? h : `${h}:${t.port}`;
}

/** SANDBOX_GATEWAY_HOST stands for the real gateway; every other target is itself. */
export function realTarget(target: Target, view: SessionView): Target {
  return target.host === SANDBOX_GATEWAY_HOST && view.gateway && !target.decision ? { ...view.gateway } : target;
}

/** Egress and stub checks shared by plain requests and upgrades; answers the refusal itself. */
async function admit(req: http.IncomingMessage, reply: http.ServerResponse | Socket, requested: Target, view: SessionView, deps: ForwardDeps) {
  const target = realTarget(requested, view);
  const record = (decision: 'swapped' | 'blocked', rule: string, credentialName: string | null) =>
    deps.recorder.record({
      sessionId: view.sessionId, at: new Date(), host: target.host, method: req.method ?? 'GET',
      path: pathOnly(req.url ?? '/'), credentialName, decision, rule,
    });
  const decision = target.decision ?? (await decideEgress(target.host, view.egress));
  if (!decision.allowed) {
    if (decision.unresolved) return void refusal(reply, 502, 'dns_unresolved', `cannot resolve ${target.host}`, decision.rule);
    record('blocked', decision.rule, null);
    return void refusal(reply, 403, 'egress_denied', `Berth egress policy refuses ${target.host} (rule ${decision.rule})`, decision.rule);
  }
  const swap = swapRequest(target.host, req.headers, req.url ?? '/', view.secrets);
  if (swap.blocked) {
    record('blocked', swap.rule, swap.credential);
    const msg = `the stub of ${swap.credential} may only be sent to its bound hosts, not ${target.host} (rule ${swap.rule})`;
    return void refusal(reply, 403, 'credential_unbound_host', msg, swap.rule);
  }
  for (const name of swap.used) record('swapped', `credential:${name}`, name);
  const scrubbing = view.secrets.filter((s) => boundTo(s, target.host));
  const headers = { ...swap.headers, host: authority(target) };
  // Compressed responses would hide a reflected value from the scrubber.
  if (scrubbing.length) headers['accept-encoding'] = 'identity';
  const options: https.RequestOptions = {
    host: target.host, port: target.port, method: req.method, path: swap.path, headers,
    agent: target.tls ? deps.httpsAgent : deps.httpAgent,
    lookup: pinnedLookup(decision.address, decision.family),
    servername: target.tls && !/^[\d.]+$|:/.test(target.host) ? target.host : undefined,
  };
  // Bodies: every stub is watched for on its way to a host it is not bound to (the match stops the
  // request before the stub leaves); a bound credential that opted in has its stub replaced.
  const bodyReplacements = view.secrets.flatMap((s): Replacement[] => {
    const from = Buffer.from(s.stub);
    if (!boundTo(s, target.host)) {
      return [{ from, to: from, onMatch: () => {
        record('blocked', `credential:${s.name}:unbound-host`, s.name);
        throw new StubHeadingElsewhere(s.name);
      } }];
    }
    if (!s.inject.includes('body')) return [];
    let recorded = swap.used.includes(s.name);
    return [{ from, to: Buffer.from(s.value), onMatch: () => {
      if (!recorded) record('swapped', `credential:${s.name}:body`, s.name);
      recorded = true;
    } }];
  });
  const responseReplacements = scrubbing.map((s) => ({ from: Buffer.from(s.value), to: Buffer.from(s.stub) }));
  return { target, options, bodyReplacements, responseReplacements, scrubbing };
}

async function readSmall(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function declaredLength(headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders): number | undefined {
  const v = headers['content-length'];
  return v === undefined ? undefined : Number(v);
}

/** Sends `body` (rewritten when there are replacements) to `dest`, fixing the length headers first. */
async function sendBody(
  body: Readable,
  headers: http.OutgoingHttpHeaders,
  replacements: Replacement[],
  start: (headers: http.OutgoingHttpHeaders) => NodeJS.WritableStream,
  onError: (err: Error) => void,
): Promise<void> {
  const len = declaredLength(headers);
  if (replacements.length === 0) return void pipeline(body, start(headers), (e) => e && onError(e));
  // Watching only (nothing changes length): stream as is, with the declared length.
  if (replacements.every((r) => r.to === r.from)) return void pipeline(body, new StreamReplacer(replacements), start(headers), (e) => e && onError(e));
  if (len !== undefined && len <= BUFFER_LIMIT) {
    const data = StreamReplacer.replaceAll(await readSmall(body), replacements);
    return void start({ ...headers, 'content-length': String(data.length) }).end(data);
  }
  const { 'content-length': _dropped, ...rest } = headers;
  pipeline(body, new StreamReplacer(replacements), start(rest), (e) => e && onError(e));
}

export async function forwardRequest(req: http.IncomingMessage, res: http.ServerResponse, requested: Target, view: SessionView, deps: ForwardDeps): Promise<void> {
  const admitted = await admit(req, res, requested, view, deps);
  if (!admitted) return;
  const { target, options, bodyReplacements, responseReplacements, scrubbing } = admitted;
  const fail = (err: Error) => {
    if (err instanceof StubHeadingElsewhere) {
      const rule = `credential:${err.message}:unbound-host`;
      refusal(res, 403, 'credential_unbound_host', `the stub of ${err.message} may only be sent to its bound hosts (rule ${rule})`, rule);
    } else if (!res.headersSent) {
      refusal(res, 502, 'upstream_failed', `upstream ${target.host}:${target.port} failed: ${err.message}`, 'upstream');
    } else res.destroy();
    upstream?.destroy();
  };
  let upstream: http.ClientRequest | undefined;
  res.on('close', () => res.writableFinished || upstream?.destroy());
  await sendBody(req, options.headers as http.OutgoingHttpHeaders, bodyReplacements, (headers) => {
    upstream = (target.tls ? https : http).request({ ...options, headers }, (up) => {
      const headers = scrubHeaders(up.headers, scrubbing);
      const hasBody = req.method !== 'HEAD' && up.statusCode !== 204 && up.statusCode !== 304;
      const replacements = hasBody ? responseReplacements : [];
      void sendBody(up, headers, replacements, (h) => res.writeHead(up.statusCode ?? 502, up.statusMessage, h), (e) => res.destroy(e));
    });
    upstream.on('error', fail);
    return upstream;
  }, fail).catch(fail);
}

/** A websocket (or other) upgrade: checked and swapped like a request, then bytes pass through. */
export async function forwardUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer, requested: Target, view: SessionView, deps: ForwardDeps): Promise<void> {
  socket.on('error', () => socket.destroy());
  const admitted = await admit(req, socket, requested, view, deps);
  if (!admitted) return;
  const { target, options, scrubbing } = admitted;
  const headers = { ...(options.headers as http.OutgoingHttpHeaders), connection: 'Upgrade', upgrade: req.headers.upgrade ?? 'websocket' };
  const upstream = (target.tls ? https : http).request({ ...options, headers, agent: false, ca: deps.httpsAgent.options.ca });
  upstream.on('upgrade', (up, upSocket, upHead) => {
    const lines = Object.entries(scrubHeaders(up.headers, scrubbing)).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${k}: ${x}`));
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${up.headers.upgrade ?? 'websocket'}\r\n${lines.join('\r\n')}\r\n\r\n`);
    if (upHead.length) socket.write(upHead);
    if (head.length) upSocket.write(head);
    upSocket.on('error', () => socket.destroy());
    socket.on('close', () => upSocket.destroy());
    upSocket.pipe(socket).pipe(upSocket);
  });
  upstream.on('response', (up) => {
    const body = `upstream refused the upgrade with ${up.statusCode}`;
    socket.end(`HTTP/1.1 ${up.statusCode} ${up.statusMessage}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    up.resume();
  });
  upstream.on('error', (err) => refusal(socket, 502, 'upstream_failed', `upstream ${target.host} failed: ${err.message}`, 'upstream'));
  upstream.end();
}

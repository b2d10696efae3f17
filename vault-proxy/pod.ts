// Pod mode: the vault proxy as the sidecar of one Kubernetes sandbox pod. It has no database and no
// vault key: the worker pushes the session's view (credentials with their values, stubs, gateway,
// egress policy) with every bind, and drains the interception records the sidecar queues.
//
// The pod is warm and anonymous until a session claims it, so the proxy listens on the pod's loopback
// port serving no one (503 session_not_bound, never forwarded) until the worker binds the session on
// the control port: `PUT /session/<id>` with `Authorization: Bearer <control token>` and the view as
// the body. The worker binds again before every tool call, which replaces the view (a revoked
// credential or a changed policy applies from the next call). A pod serves one session for its whole
// life: another session's bind is 409. The view is kept in memory only, never on disk; the session
// file (on the pod's emptyDir, which the harness container does not mount) keeps only the session id,
// so a restarted sidecar still refuses any other session, and answers 503 session_view_missing until
// the next bind brings the view back. The sandbox shares the pod's network namespace and can reach
// the control port too, which is why the token (which it never sees) and not the NetworkPolicy is
// what authenticates the worker. The control port speaks only TLS, with a leaf certificate the Berth
// CA signs for the address the connection arrived at: the worker verifies it against that CA alone,
// so the view never crosses the network in clear, and a sandbox process listening on the port while
// the sidecar is down (it has no CA key) gets neither the token nor the view.
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { ZodType } from 'zod';
import { SessionNotBound, type SessionView } from './forward.ts';
import { SessionProxy, type ProxyDeps } from './proxy.ts';
import type { InterceptionQueue } from './queue.ts';
import { drainRequestSchema, firstIssue, pushedViewSchema } from './view.ts';

const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const MAX_BODY = 1 << 20;

export interface HostPort {
  host: string;
  port: number;
}

export interface PodProxyOptions extends Omit<ProxyDeps, 'recorder'> {
  recorder: InterceptionQueue;
  listen: HostPort;
  controlListen: HostPort;
  controlToken: string;
  /** Keeps the bound session id (only the id) across restarts of the proxy. */
  sessionFile?: string;
}

export function parseHostPort(value: string): HostPort {
  const i = value.lastIndexOf(':');
  return { host: value.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(value.slice(i + 1)) };
}

/** Constant-time comparison of a presented token with the expected one (hashing evens out lengths). */
function tokenMatches(presented: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

function reply(res: http.ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

function error(res: http.ServerResponse, status: number, code: string, message: string, field?: string): void {
  reply(res, status, { error: { code, message, ...(field ? { details: { field } } : {}) } });
}

class BadBody extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The request's JSON body, parsed by `schema`; never echoes what it holds. */
async function readJson<T>(req: http.IncomingMessage, schema: ZodType<T>): Promise<T> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BadBody(413, 'body_too_large', `the body may hold at most ${MAX_BODY} bytes`);
    parts.push(chunk as Buffer);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new BadBody(400, 'bad_request', 'the body is not JSON: send the session view as JSON', '(body)');
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const { field, message } = firstIssue(parsed.error);
    throw new BadBody(400, 'bad_request', `invalid body at ${field}: ${message}`, field);
  }
  return parsed.data;
}

export class PodProxyService {
  private sessionId: string | undefined;
  private view: SessionView | undefined;
  private readonly proxy: SessionProxy;
  /** Accepts TCP connections and hands each, once wrapped in TLS, to `controlHttp`. */
  private readonly control: net.Server;
  private readonly controlHttp: http.Server;
  private readonly controlSockets = new Set<Socket>();

  constructor(private readonly opts: PodProxyOptions) {
    this.proxy = new SessionProxy(() => this.sessionId, () => this.load(), opts);
    this.controlHttp = http.createServer((req, res) => void this.onControl(req, res));
    this.control = net.createServer((s) => void this.acceptControl(s));
  }

  /** Serves TLS with a leaf for the address the worker dialled (the pod IP; no SNI for an IP). */
  private async acceptControl(socket: Socket): Promise<void> {
    this.controlSockets.add(socket);
    socket.on('close', () => this.controlSockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const address = (socket.localAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
    try {
      const secureContext = await this.opts.ca.contextFor(address);
      if (socket.destroyed) return;
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
      secure.on('error', () => secure.destroy());
      this.controlHttp.emit('connection', secure);
    } catch (err) {
      this.opts.log.error('control connection refused: cannot issue its certificate', { address, err: (err as Error).message });
      socket.destroy();
    }
  }

  /** Opens the control port first: once the proxy port answers (the readiness probe), both do. */
  async start(): Promise<void> {
    const file = this.opts.sessionFile;
    if (file && existsSync(file)) {
      const kept = readFileSync(file, 'utf8').trim();
      if (!SESSION_ID.test(kept)) throw new Error(`VAULT_PROXY_SESSION_FILE ${file} holds no session id`);
      this.sessionId = kept;
      this.opts.log.info('session bound before a restart; waiting for its view', { sessionId: kept });
    }
    await new Promise<void>((resolve, reject) => {
      this.control.once('error', reject).listen(this.opts.controlListen, () => {
        this.control.off('error', reject);
        resolve();
      });
    });
    await this.proxy.listen(this.opts.listen);
    this.opts.log.info('vault proxy ready (pod mode)', { listen: this.opts.listen, control: this.opts.controlListen });
  }

  async stop(): Promise<void> {
    for (const s of this.controlSockets) s.destroy();
    await new Promise<void>((resolve) => this.control.close(() => resolve()));
    await this.proxy.close();
  }

  private load(): Promise<SessionView> {
    if (!this.sessionId) {
      return Promise.reject(new SessionNotBound('session_not_bound', 'this sandbox has no session yet: the Berth vault proxy forwards nothing until the worker binds one'));
    }
    if (!this.view) {
      const message = 'the Berth vault proxy restarted and has not received this session\'s credentials and policy yet: retry after the next tool call';
      return Promise.reject(new SessionNotBound('session_view_missing', message));
    }
    return Promise.resolve(this.view);
  }

  /** Takes the session for good, keeping its id (only the id) in the session file first. */
  private bind(sessionId: string): void {
    const file = this.opts.sessionFile;
    try {
      if (file) {
        writeFileSync(`${file}.tmp`, sessionId, { mode: 0o600 });
        renameSync(`${file}.tmp`, file);
      }
    } catch (err) {
      throw new Error(`cannot write VAULT_PROXY_SESSION_FILE: ${(err as Error).message}`);
    }
    this.sessionId = sessionId;
    this.opts.log.info('session bound', { sessionId });
  }

  private async onControl(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://control');
    // Answered without reading the body: drop it, so the connection can serve the next request.
    const refuse = (status: number, code: string, message: string, field?: string) => {
      req.resume();
      error(res, status, code, message, field);
    };
    if (req.method === 'GET' && url.pathname === '/healthz') {
      req.resume();
      return reply(res, 200, { ok: true });
    }
    const m = /^\/session\/([^/]*)(\/interceptions\/drain)?$/.exec(url.pathname);
    if (!m) return refuse(404, 'not_found', 'unknown route: the control port serves PUT /session/<id>, POST /session/<id>/interceptions/drain and GET /healthz');
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!auth || !tokenMatches(auth[1]!, this.opts.controlToken)) {
      this.opts.log.warn('control request refused: bad or missing token', { from: req.socket.remoteAddress });
      return refuse(401, 'unauthorized', 'send Authorization: Bearer <VAULT_PROXY_CONTROL_TOKEN>');
    }
    const draining = Boolean(m[2]);
    if (req.method !== (draining ? 'POST' : 'PUT')) {
      return refuse(405, 'method_not_allowed', draining ? 'use POST to drain interceptions' : 'use PUT to bind the session');
    }
    const sessionId = decodeURIComponent(m[1]!);
    if (!SESSION_ID.test(sessionId)) {
      return refuse(400, 'bad_request', 'expected a session id of 1-128 letters, digits, _ or -', 'session');
    }
    if (this.sessionId && this.sessionId !== sessionId) {
      return refuse(409, 'already_bound', `this sandbox pod already serves session ${this.sessionId}; a pod is never reused for another session`);
    }
    try {
      if (draining) {
        if (!this.sessionId) return error(res, 409, 'not_bound', 'no session is bound to this pod: nothing to drain');
        return reply(res, 200, this.opts.recorder.drain(await readJson(req, drainRequestSchema)));
      }
      const view = await readJson(req, pushedViewSchema);
      if (!this.sessionId) this.bind(sessionId);
      this.view = { sessionId, ...view };
      reply(res, 200, { sessionId });
    } catch (err) {
      if (err instanceof BadBody) return error(res, err.status, err.code, err.message, err.field);
      this.opts.log.error('control request failed', { sessionId, err: (err as Error).message });
      error(res, 500, 'internal', `the vault proxy could not serve this request: ${(err as Error).message}`);
    }
  }
}

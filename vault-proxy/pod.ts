// Pod mode: the vault proxy as the sidecar of one Kubernetes sandbox pod. The pod is warm and
// anonymous until a session claims it, so the proxy listens on the pod's loopback port serving no one
// (every request is refused with 503 session_not_bound, never forwarded) until the worker binds the
// session on the control port: `PUT /session/<id>` with `Authorization: Bearer <control token>`.
// A pod serves one session for its whole life: binding the same session again is a no-op, another
// one is 409. With a session file the binding outlives a restart of the sidecar (the file sits on
// the pod's emptyDir, which the harness container does not mount). The sandbox shares the pod's network namespace and can reach the control port too,
// which is why the token (which it never sees) and not the NetworkPolicy is what authenticates.
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { SessionNotBound, type SessionView } from './forward.ts';
import { SessionProxy, type ProxyDeps } from './proxy.ts';

const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface HostPort {
  host: string;
  port: number;
}

export interface PodProxyOptions extends ProxyDeps {
  listen: HostPort;
  controlListen: HostPort;
  controlToken: string;
  /** Keeps the bound session id across restarts of the proxy. */
  sessionFile?: string;
  load: (sessionId: string) => Promise<SessionView>;
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

export class PodProxyService {
  private sessionId: string | undefined;
  private readonly proxy: SessionProxy;
  private readonly control: http.Server;
  private readonly controlSockets = new Set<Socket>();

  constructor(private readonly opts: PodProxyOptions) {
    this.proxy = new SessionProxy(() => this.sessionId, () => this.load(), opts);
    this.control = http.createServer((req, res) => this.onControl(req, res));
    this.control.on('connection', (s: Socket) => {
      this.controlSockets.add(s);
      s.on('close', () => this.controlSockets.delete(s));
    });
  }

  /** Opens the control port first: once the proxy port answers (the readiness probe), both do. */
  async start(): Promise<void> {
    const file = this.opts.sessionFile;
    if (file && existsSync(file)) {
      const kept = readFileSync(file, 'utf8').trim();
      if (!SESSION_ID.test(kept)) throw new Error(`VAULT_PROXY_SESSION_FILE ${file} holds no session id`);
      this.sessionId = kept;
      this.opts.log.info('session bound before a restart', { sessionId: kept });
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
      return Promise.reject(new SessionNotBound('this sandbox has no session yet: the Berth vault proxy forwards nothing until the worker binds one'));
    }
    return this.opts.load(this.sessionId);
  }

  private keep(sessionId: string): void {
    const file = this.opts.sessionFile;
    if (!file) return;
    writeFileSync(`${file}.tmp`, sessionId, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  private onControl(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://control');
    if (req.method === 'GET' && url.pathname === '/healthz') return reply(res, 200, { ok: true });
    const m = /^\/session\/([^/]*)$/.exec(url.pathname);
    if (!m) return error(res, 404, 'not_found', 'unknown route: the control port serves PUT /session/<session id> and GET /healthz');
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!auth || !tokenMatches(auth[1]!, this.opts.controlToken)) {
      this.opts.log.warn('control request refused: bad or missing token', { from: req.socket.remoteAddress });
      return error(res, 401, 'unauthorized', 'send Authorization: Bearer <VAULT_PROXY_CONTROL_TOKEN>');
    }
    if (req.method !== 'PUT') return error(res, 405, 'method_not_allowed', 'use PUT to bind the session');
    const sessionId = decodeURIComponent(m[1]!);
    if (!SESSION_ID.test(sessionId)) return error(res, 400, 'bad_request', 'expected a session id of 1-128 letters, digits, _ or -', 'session');
    if (this.sessionId && this.sessionId !== sessionId) {
      return error(res, 409, 'already_bound', `this sandbox pod already serves session ${this.sessionId}; a pod is never reused for another session`);
    }
    if (!this.sessionId) {
      try {
        this.keep(sessionId);
      } catch (err) {
        this.opts.log.error('cannot keep the binding', { sessionId, err });
        return error(res, 500, 'internal', `the vault proxy cannot write VAULT_PROXY_SESSION_FILE: ${(err as Error).message}`);
      }
      this.sessionId = sessionId;
      this.opts.log.info('session bound', { sessionId });
    }
    reply(res, 200, { sessionId });
  }
}

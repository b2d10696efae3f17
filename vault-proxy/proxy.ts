// One session's proxy listener. Which session a request belongs to is decided by the listener it came
// in on: each session has its own unix socket, in a directory only that session's sandbox has bound
// (see docs in vault-proxy/README.md), so a sandbox cannot speak for another session. In pod mode
// the listener is the pod's loopback TCP port and the session is the one the worker bound (pod.ts).
import http from 'node:http';
import type https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { CertificateAuthority } from './ca.ts';
import { decideEgress } from './egress.ts';
import { SessionNotBound, SessionUnavailable, forwardRequest, forwardUpgrade, realTarget, refusal, type SessionView, type Target } from './forward.ts';
import type { Recorder } from './record.ts';
import type { Logger } from '../lib/log.ts';

export interface ProxyDeps {
  ca: CertificateAuthority;
  recorder: Recorder;
  log: Logger;
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
}

const TLS_HANDSHAKE = 0x16;

function parseAuthority(value: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/?#\s[\]]+))(?::(\d{1,5}))?$/.exec(value);
  const port = m?.[3] ? Number(m[3]) : defaultPort;
  if (!m || port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]!).toLowerCase().replace(/\.$/, ''), port };
}

export class SessionProxy {
  private readonly outer: http.Server;
  /** Serves requests arriving inside CONNECT tunnels; the tunnel's target is kept per socket. */
  private readonly inner: http.Server;
  private readonly targets = new WeakMap<Socket, Target>();
  private readonly sockets = new Set<Socket>();

  constructor(
    /** For logs: the session this listener serves (pod mode: known once bound). */
    private readonly sessionId: string | (() => string | undefined),
    private readonly load: () => Promise<SessionView>,
    private readonly deps: ProxyDeps,
  ) {
    const serverOptions = { requestTimeout: 0, keepAliveTimeout: 60_000 };
    this.outer = http.createServer(serverOptions, (req, res) => void this.onPlainRequest(req, res));
    this.outer.on('connect', (req, socket: Socket, head) => void this.onConnect(req, socket, head));
    this.outer.on('upgrade', (req, socket: Socket, head) => {
      const target = this.absoluteTarget(req);
      if (!target) return void refusal(socket, 400, 'bad_request', 'expected an absolute http:// URL', 'request');
      void this.withView(socket, (view) => forwardUpgrade(req, socket, head, target, view, this.deps));
    });
    this.inner = http.createServer(serverOptions, (req, res) => {
      const target = this.targets.get(req.socket)!;
      void this.withView(res, (view) => forwardRequest(req, res, target, view, this.deps));
    });
    this.inner.on('upgrade', (req, socket: Socket, head) => {
      const target = this.targets.get(socket)!;
      void this.withView(socket, (view) => forwardUpgrade(req, socket, head, target, view, this.deps));
    });
    for (const server of [this.outer, this.inner]) {
      server.on('connection', (s: Socket) => {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
      });
      server.on('clientError', (_err, socket: Socket) => socket.destroy());
    }
  }

  /** A unix socket path, or a TCP address (pod mode). */
  listen(where: string | { host: string; port: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.outer.once('error', reject);
      this.outer.listen(typeof where === 'string' ? { path: where } : where, () => {
        this.outer.off('error', reject);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.outer.close(() => resolve()));
  }

  private async withView(reply: http.ServerResponse | Socket, fn: (view: SessionView) => Promise<void>): Promise<void> {
    try {
      await fn(await this.load());
    } catch (err) {
      this.fail(reply, err);
    }
  }

  private fail(reply: http.ServerResponse | Socket, err: unknown): void {
    if (err instanceof SessionUnavailable) return refusal(reply, 403, 'session_unavailable', err.message, 'session');
    if (err instanceof SessionNotBound) return refusal(reply, 503, err.code, err.message, 'session');
    this.deps.log.error('proxy request failed', { sessionId: typeof this.sessionId === 'string' ? this.sessionId : this.sessionId(), err });
    refusal(reply, 502, 'proxy_failed', 'the Berth vault proxy could not handle this request', 'internal');
  }

  private absoluteTarget(req: http.IncomingMessage): Target | undefined {
    const m = /^http:\/\/([^/?#]+)/i.exec(req.url ?? '');
    const auth = m && parseAuthority(m[1]!, 80);
    if (!auth) return undefined;
    req.url = req.url!.slice(m[0].length) || '/';
    return { ...auth, tls: false };
  }

  private onPlainRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const target = this.absoluteTarget(req);
    if (!target) {
      const msg = 'this is the Berth egress proxy: send absolute http:// URLs, or CONNECT for https';
      return refusal(res, 400, 'bad_request', msg, 'request');
    }
    void this.withView(res, (view) => forwardRequest(req, res, target, view, this.deps));
  }

  private async onConnect(req: http.IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const auth = parseAuthority(req.url ?? '', 443);
    if (!auth) return refusal(socket, 400, 'bad_request', 'CONNECT needs host:port', 'request');
    let view: SessionView;
    try {
      view = await this.load();
    } catch (err) {
      return this.fail(socket, err);
    }
    const requested: Target = { ...auth, tls: true };
    const upstream = realTarget(requested, view);
    const decision = await decideEgress(upstream.host, view.egress);
    if (!decision.allowed) {
      if (decision.unresolved) return refusal(socket, 502, 'dns_unresolved', `cannot resolve ${auth.host}`, decision.rule);
      this.deps.recorder.record({
        sessionId: view.sessionId, at: new Date(), host: upstream.host, method: 'CONNECT', path: '',
        credentialName: null, decision: 'blocked', rule: decision.rule,
      });
      return refusal(socket, 403, 'egress_denied', `Berth egress policy refuses ${auth.host} (rule ${decision.rule})`, decision.rule);
    }
    const context = await this.deps.ca.contextFor(auth.host);
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const start = (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      const tlsOn = first[0] === TLS_HANDSHAKE;
      const conn: Socket = tlsOn ? new tls.TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: ['http/1.1'] }) : socket;
      // The client's leg is TLS or not; the upstream leg is the same, except for the gateway alias.
      this.targets.set(conn, { host: upstream.host, port: upstream.port, tls: upstream === requested ? tlsOn : upstream.tls, decision });
      conn.on('error', () => conn.destroy());
      this.inner.emit('connection', conn);
      if (!tlsOn) socket.resume();
    };
    if (head.length) start(head);
    else socket.once('data', start);
  }
}

// The proxy process's listeners: one unix socket per session, in a directory of its own that only that
// session's sandbox gets bound (so the socket a connection arrives on IS the session: nothing a sandbox
// sends can claim another session), and a control socket for the worker, reachable from the host only.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { CA_BUNDLE_NAME, PROXY_SOCKET_NAME, controlSocket, sessionSocketDir } from './paths.ts';
import type { SessionView } from './forward.ts';
import { SessionProxy, type ProxyDeps } from './proxy.ts';

const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface ServiceOptions extends ProxyDeps {
  runDir: string;
  caBundleFile: string;
  load: (sessionId: string) => Promise<SessionView>;
  forget?: (sessionId: string) => void;
}

export class VaultProxyService {
  private readonly proxies = new Map<string, Promise<SessionProxy>>();
  private control: http.Server | undefined;

  constructor(private readonly opts: ServiceOptions) {}

  /** Opens the control socket and the listeners of every session that had one before a restart. */
  async start(): Promise<void> {
    mkdirSync(path.join(this.opts.runDir, 's'), { recursive: true, mode: 0o711 });
    const sessions = readdirSync(path.join(this.opts.runDir, 's')).filter((id) => SESSION_ID.test(id));
    await Promise.all(sessions.map((id) => this.open(id)));
    rmSync(controlSocket(this.opts.runDir), { force: true });
    this.control = http.createServer((req, res) => void this.onControl(req, res));
    await new Promise<void>((resolve, reject) => {
      this.control!.once('error', reject).listen(controlSocket(this.opts.runDir), resolve);
    });
    this.opts.log.info('vault proxy ready', { runDir: this.opts.runDir, restoredSessions: sessions.length });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.control ? this.control.close(() => resolve()) : resolve()));
    await Promise.all([...this.proxies.values()].map(async (p) => (await p).close()));
    this.proxies.clear();
  }

  /** Idempotent: the session's listener, opened on first call. */
  open(sessionId: string): Promise<SessionProxy> {
    let proxy = this.proxies.get(sessionId);
    if (!proxy) {
      proxy = this.listen(sessionId);
      proxy.catch(() => this.proxies.delete(sessionId));
      this.proxies.set(sessionId, proxy);
    }
    return proxy;
  }

  async close(sessionId: string): Promise<void> {
    const proxy = this.proxies.get(sessionId);
    this.proxies.delete(sessionId);
    await (await proxy?.catch(() => undefined))?.close();
    this.opts.forget?.(sessionId);
    rmSync(sessionSocketDir(this.opts.runDir, sessionId), { recursive: true, force: true });
  }

  private async listen(sessionId: string): Promise<SessionProxy> {
    const dir = sessionSocketDir(this.opts.runDir, sessionId);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    copyFileSync(this.opts.caBundleFile, path.join(dir, CA_BUNDLE_NAME));
    const socketPath = path.join(dir, PROXY_SOCKET_NAME);
    if (existsSync(socketPath)) rmSync(socketPath); // left by a previous run of the proxy
    const proxy = new SessionProxy(sessionId, () => this.opts.load(sessionId), this.opts);
    await proxy.listen(socketPath);
    return proxy;
  }

  private async onControl(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const m = /^\/sessions\/([^/?]+)$/.exec(req.url ?? '');
    const sessionId = m ? decodeURIComponent(m[1]!) : '';
    try {
      if (req.method === 'GET' && req.url === '/healthz') return void res.writeHead(200).end('ok');
      if (!SESSION_ID.test(sessionId)) return void res.writeHead(404).end('unknown route or bad session id');
      if (req.method === 'PUT') {
        await this.open(sessionId);
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ dir: sessionSocketDir(this.opts.runDir, sessionId) }));
      }
      if (req.method === 'DELETE') {
        await this.close(sessionId);
        return void res.writeHead(204).end();
      }
      res.writeHead(405).end();
    } catch (err) {
      this.opts.log.error('control request failed', { sessionId, err });
      res.writeHead(500).end((err as Error).message);
    }
  }
}

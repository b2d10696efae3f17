// Real parts for the vault proxy tests: an HTTPS upstream with its own CA (the proxy trusts it through
// VAULT_EXTRA_CA_FILE), a session proxy on a unix socket with a TCP bridge in front (what sandboxd does
// inside a sandbox), and a keep-alive agent that tunnels through the proxy with CONNECT.
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Duplex, Readable } from 'node:stream';
import tls from 'node:tls';
import { CertificateAuthority } from '../../vault-proxy/ca.ts';
import { SessionProxy } from '../../vault-proxy/proxy.ts';
import type { SessionView } from '../../vault-proxy/forward.ts';
import type { Interception, Recorder } from '../../vault-proxy/record.ts';
import { createUpstreamAgents } from '../../vault-proxy/upstream.ts';
import { createLogger } from '../../lib/log.ts';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Upstream {
  httpsPort: number;
  httpPort: number;
  caFile: string;
  /** Requests the upstream received, newest last. */
  seen: Seen[];
  close(): Promise<void>;
}

/**
 * `/echo` answers with what it received; `/reflect` sends the request's Authorization back in a header
 * and the body; `/download?mb=N` streams N MiB; `/upload` counts and hashes the body; `/git/…` asks for
 * basic auth (401) first, as a git server does. Upgrades echo bytes.
 */
/** `address`: where it listens; 127.0.0.2 keeps it apart from a sandbox's NO_PROXY (localhost, 127.0.0.1). */
export async function startUpstream(dir: string, address = '127.0.0.1'): Promise<Upstream> {
  const ca = await CertificateAuthority.loadOrCreate(path.join(dir, 'upstream-ca'));
  const caFile = path.join(dir, 'upstream-ca.pem');
  writeFileSync(caFile, ca.certPem);
  const seen: Seen[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/download') {
      const total = Number(url.searchParams.get('mb')) << 20;
      const chunk = Buffer.alloc(64 << 10, 'd');
      res.writeHead(200, { 'content-length': String(total), 'content-type': 'application/octet-stream' });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    if (url.pathname === '/upload') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => ((bytes += c.length), hash.update(c)));
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString();
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (url.pathname.startsWith('/git/') && !req.headers.authorization) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end('auth required');
      } else if (url.pathname === '/reflect') {
        const auth = req.headers.authorization ?? '';
        res.writeHead(200, { 'x-echo-auth': auth, 'content-type': 'text/plain' }).end(`you sent: ${auth} and ${body}`);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
      }
    });
  };
  const { key, cert } = await ca.issuePem(['localhost', '127.0.0.1', '127.0.0.2']);
  const httpsServer = https.createServer({ key, cert, keepAliveTimeout: 30_000 }, handler);
  const httpServer = http.createServer({ keepAliveTimeout: 30_000 }, handler);
  for (const server of [httpsServer, httpServer]) {
    server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' });
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n');
      socket.pipe(socket);
    });
  }
  const listen = (s: net.Server) => new Promise<number>((r) => s.listen(0, address, () => r((s.address() as net.AddressInfo).port)));
  const [httpsPort, httpPort] = await Promise.all([listen(httpsServer), listen(httpServer)]);
  return {
    httpsPort,
    httpPort,
    caFile,
    seen,
    close: async () => {
      for (const s of [httpsServer, httpServer]) s.closeAllConnections();
      await Promise.all([httpsServer, httpServer].map((s) => new Promise((r) => s.close(r))));
    },
  };
}

export class MemoryRecorder implements Recorder {
  readonly records: Interception[] = [];
  record(i: Interception): void {
    this.records.push(i);
  }
  async flush(): Promise<void> {}
}

export interface TestProxy {
  /** TCP port of the bridge in front of the session's unix socket. */
  port: number;
  url: string;
  socketPath: string;
  /** The Berth CA certificate clients must trust. */
  caPem: string;
  caBundleFile: string;
  recorder: MemoryRecorder;
  view: SessionView;
  close(): Promise<void>;
}

/** Bridges 127.0.0.1:<port> to a unix socket, as sandboxd does inside the sandbox. */
export async function bridge(socketPath: string): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer((client) => {
    const up = net.connect(socketPath);
    client.pipe(up).pipe(client);
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, server };
}

export async function startProxy(dir: string, view: SessionView, extraCaFile: string): Promise<TestProxy> {
  const ca = await CertificateAuthority.loadOrCreate(path.join(dir, 'berth-ca'));
  const recorder = new MemoryRecorder();
  const agents = createUpstreamAgents(extraCaFile);
  const proxy = new SessionProxy(view.sessionId, async () => view, { ca, recorder, log: createLogger('vault-proxy-test'), ...agents });
  const socketPath = path.join(dir, `${view.sessionId}.sock`);
  await proxy.listen(socketPath);
  const b = await bridge(socketPath);
  return {
    port: b.port,
    url: `http://127.0.0.1:${b.port}`,
    socketPath,
    caPem: ca.certPem,
    caBundleFile: path.join(dir, 'berth-ca', 'ca-bundle.crt'),
    recorder,
    view,
    close: async () => {
      b.server.close();
      await proxy.close();
      agents.httpAgent.destroy();
      agents.httpsAgent.destroy();
    },
  };
}

/** A keep-alive HTTPS agent whose sockets are CONNECT tunnels through an HTTP proxy. */
export class TunnelAgent extends https.Agent {
  /** `proxy`: the proxy's TCP port on 127.0.0.1, or the path of its unix socket. */
  constructor(
    private readonly proxy: number | string,
    ca: string,
  ) {
    super({ keepAlive: true, ca, maxSockets: 16 });
  }

  override createConnection(options: https.RequestOptions, cb?: (err: Error | null, s: Duplex) => void): Duplex | undefined {
    const done = cb ?? (() => undefined);
    const where = typeof this.proxy === 'number' ? { host: '127.0.0.1', port: this.proxy } : { socketPath: this.proxy };
    const req = http.request({ ...where, method: 'CONNECT', path: `${options.host}:${options.port}` });
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        return done(Object.assign(new Error(`CONNECT refused: ${res.statusCode}`), { statusCode: res.statusCode }), socket);
      }
      done(null, tls.connect({ ...(options as tls.ConnectionOptions), socket }));
    });
    req.on('error', (err) => done(err, req.socket ?? new Duplex()));
    req.end();
    return undefined;
  }
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(url: string, opts: https.RequestOptions & { body?: string | Buffer } = {}): Promise<Reply> {
  const { body, ...rest } = opts;
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(url, rest, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Streams `total` bytes as the request body; resolves with the response text. */
export function upload(url: string, agent: https.Agent, total: number): Promise<string> {
  const chunk = Buffer.alloc(256 << 10, 'u');
  return new Promise((resolve, reject) => {
    const req = https.request(url, { agent, method: 'POST', headers: { 'content-length': String(total) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    Readable.from((function* () {
      for (let sent = 0; sent < total; sent += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, total - sent));
    })()).pipe(req);
  });
}

/** Reads a response body without keeping it; resolves with its size. */
export function download(url: string, agent: https.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    https.get(url, { agent }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve(bytes));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Stops a vault proxy process a test started, and removes its socket dir: that lives under the temp dir, keyed by the data dir, so outside the test's own temp dir. */
export async function stopVaultProxy(proxy: { stop(): Promise<void>; runDir: string } | undefined): Promise<void> {
  if (!proxy) return;
  await proxy.stop();
  rmSync(proxy.runDir, { recursive: true, force: true });
}


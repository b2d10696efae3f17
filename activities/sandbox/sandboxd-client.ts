// SandboxdClient over node:http, to a unix socket (local backend) or host:port (Kubernetes).
// Wire format: harnesses/sandboxd/PROTOCOL.md.
import http from 'node:http';
import {
  SandboxGoneError,
  SandboxRequestError,
  type ExecChunk,
  type ExecRequest,
  type ExecResult,
  type FileEntry,
  type SandboxdClient,
} from './provider.ts';

export type SandboxdAddress = { socketPath: string } | { host: string; port: number };

/** Errors that mean nothing (or nothing alive) is listening: the sandbox is gone. */
const GONE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ECONNABORTED', 'ENOTCONN',
  'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT', 'ENOTSOCK',
]);

interface WireExit {
  code: number | null;
  signal: string | null;
  timed_out: boolean;
  killed: boolean;
  dropped_bytes: number;
}

export interface SandboxdClientOptions {
  /** How long a non-exec request may take before the sandbox counts as gone. */
  requestTimeoutMs?: number;
  /** Extra environment sent with every exec (on top of the environment sandboxd was started with). */
  env?: Record<string, string>;
}

export class HttpSandboxdClient implements SandboxdClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private readonly where: string;
  private readonly requestTimeoutMs: number;
  private readonly env: Record<string, string> | undefined;

  constructor(
    private readonly address: SandboxdAddress,
    options: SandboxdClientOptions = {},
  ) {
    this.where = 'socketPath' in address ? address.socketPath : `${address.host}:${address.port}`;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.env = options.env && Object.keys(options.env).length > 0 ? options.env : undefined;
  }

  /** Closes pooled connections. */
  close(): void {
    this.agent.destroy();
  }

  async health(timeoutMs = this.requestTimeoutMs): Promise<{ ok: true; pid: number; startedAt: string }> {
    const body = JSON.parse((await this.call('GET', '/health', undefined, timeoutMs)).toString('utf8')) as {
      pid: number;
      started_at: string;
    };
    return { ok: true, pid: body.pid, startedAt: body.started_at };
  }

  async kill(execId: string): Promise<void> {
    await this.call('POST', `/exec/${encodeURIComponent(execId)}/kill`);
  }

  readFile(path: string): Promise<Buffer> {
    return this.call('GET', `/files?path=${encodeURIComponent(path)}`);
  }

  async writeFile(path: string, content: Buffer | string): Promise<void> {
    await this.call('PUT', `/files?path=${encodeURIComponent(path)}`, typeof content === 'string' ? Buffer.from(content) : content);
  }

  async listFiles(path: string): Promise<FileEntry[]> {
    const raw = await this.call('GET', `/list?path=${encodeURIComponent(path)}`);
    return (JSON.parse(raw.toString('utf8')) as { entries: FileEntry[] }).entries;
  }

  exec(req: ExecRequest, onChunk: (c: ExecChunk) => void, signal?: AbortSignal): Promise<ExecResult> {
    return this.execOnce(req, onChunk, signal, false);
  }

  /** A dead keep-alive connection is retried once: safe, since a repeated id attaches instead of rerunning. */
  private execOnce(req: ExecRequest, onChunk: (c: ExecChunk) => void, signal: AbortSignal | undefined, retried: boolean): Promise<ExecResult> {
    const body = Buffer.from(JSON.stringify({ id: req.id, command: req.command, timeout_ms: req.timeoutMs, env: this.env }));
    return new Promise<ExecResult>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      // Aborting only stops reading: the exec keeps running until the caller calls kill().
      const onAbort = () => settle(() => {
        request.destroy();
        reject(abortReason(signal!));
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      let responded = false;
      const request = this.open('POST', '/exec', body, (res) => {
        responded = true;
        if (res.statusCode !== 200) {
          readAll(res).then(
            (raw) => settle(() => reject(this.httpError(res.statusCode ?? 0, raw))),
            (err: unknown) => settle(() => reject(this.gone(err))),
          );
          return;
        }
        res.setEncoding('utf8');
        let pending = '';
        res.on('data', (text: string) => {
          pending += text;
          let nl: number;
          while (!settled && (nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (line) this.handleLine(line, onChunk, (r) => settle(() => resolve(r)), (e) => settle(() => { request.destroy(); reject(e); }));
          }
        });
        res.on('end', () => settle(() => reject(new SandboxGoneError(`sandboxd at ${this.where} ended exec ${req.id} without an exit record`))));
        res.on('error', (err) => settle(() => reject(this.gone(err))));
      });
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (!responded && !retried && request.reusedSocket && err.code === 'ECONNRESET') {
          settle(() => this.execOnce(req, onChunk, signal, true).then(resolve, reject));
        } else {
          settle(() => reject(this.gone(err)));
        }
      });
    });
  }

  private handleLine(line: string, onChunk: (c: ExecChunk) => void, done: (r: ExecResult) => void, fail: (e: unknown) => void) {
    try {
      const record = JSON.parse(line) as { stream?: 'stdout' | 'stderr'; data?: string; exit?: WireExit };
      if (record.exit) {
        const e = record.exit;
        done({ exitCode: e.code, signal: e.signal, timedOut: e.timed_out, killed: e.killed, droppedBytes: e.dropped_bytes });
      } else if (record.stream && typeof record.data === 'string') {
        onChunk({ stream: record.stream, data: record.data });
      }
    } catch (err) {
      fail(err);
    }
  }

  private open(method: string, path: string, body: Buffer | undefined, onResponse: (res: http.IncomingMessage) => void) {
    const target = 'socketPath' in this.address ? { socketPath: this.address.socketPath } : { host: this.address.host, port: this.address.port };
    const request = http.request(
      {
        ...target,
        method,
        path,
        agent: this.agent,
        headers: body ? { 'content-type': 'application/octet-stream', 'content-length': body.length } : {},
      },
      onResponse,
    );
    request.end(body);
    return request;
  }

  /** A whole request/response; a reused keep-alive connection that turns out dead is retried once. */
  private call(method: string, path: string, body?: Buffer, timeoutMs = this.requestTimeoutMs, retried = false): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const request = this.open(method, path, body, (res) => {
        readAll(res).then((raw) => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(raw);
          else reject(this.httpError(status, raw));
        }, (err: unknown) => reject(this.gone(err)));
      });
      request.setTimeout(timeoutMs, () =>
        request.destroy(new SandboxGoneError(`sandboxd at ${this.where} did not answer ${method} ${path} within ${timeoutMs} ms`)),
      );
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (request.reusedSocket && err.code === 'ECONNRESET' && !retried) {
          this.call(method, path, body, timeoutMs, true).then(resolve, reject);
        } else {
          reject(this.gone(err));
        }
      });
    });
  }

  private gone(err: unknown): Error {
    if (err instanceof SandboxGoneError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code && GONE_CODES.has(code)) return new SandboxGoneError(`sandboxd at ${this.where} is unreachable (${code})`);
    if (err instanceof Error && /aborted|socket hang up/i.test(err.message)) {
      return new SandboxGoneError(`sandboxd at ${this.where} closed the connection (${err.message})`);
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  private httpError(status: number, raw: Buffer): Error {
    let code = 'http_' + status;
    let message = raw.toString('utf8').slice(0, 500);
    try {
      const parsed = JSON.parse(message) as { error?: { code?: string; message?: string } };
      code = parsed.error?.code ?? code;
      message = parsed.error?.message ?? message;
    } catch {
      // not JSON: keep the raw text
    }
    if (status >= 400 && status < 500) return new SandboxRequestError(message, status, code);
    return new Error(`sandboxd at ${this.where} failed (${status} ${code}): ${message}`);
  }
}

function readAll(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

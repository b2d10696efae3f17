// One protocol, two backends. Activities talk to sandboxd (harnesses/sandboxd) through a
// SandboxdClient; a provider decides where sandboxd runs: `local` (bubblewrap on this host) or
// `kubernetes` (agent-sandbox resources). See harnesses/sandboxd/PROTOCOL.md for the wire format.

export interface SandboxSpec {
  sessionId: string;
  /** Environment for every process in the sandbox: the agent's env plus CONTAINER_ENV_X as X. */
  env: Record<string, string>;
}

export interface ExecRequest {
  /** Caller-chosen id; a second request with the same id attaches to the running (or finished) exec. */
  id: string;
  command: string;
  timeoutMs: number;
}

export type ExecChunk = { stream: 'stdout' | 'stderr'; data: string };

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  killed: boolean;
  /** Bytes of output sandboxd dropped because the exec exceeded its output buffer. */
  droppedBytes: number;
}

export interface FileEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
}

/** A connection to one sandbox's sandboxd. Every call fails with SandboxGoneError if it died. */
export interface SandboxdClient {
  health(): Promise<{ ok: true; pid: number; startedAt: string }>;
  exec(req: ExecRequest, onChunk: (c: ExecChunk) => void, signal?: AbortSignal): Promise<ExecResult>;
  kill(execId: string): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  writeFile(path: string, content: Buffer | string): Promise<void>;
  listFiles(path: string): Promise<FileEntry[]>;
}

export type SandboxRuntimeState = 'running' | 'stopped' | 'none';

export interface SandboxProvider {
  /** Returns a healthy sandbox for the session, starting (or restarting) it from its workspace if needed. */
  ensure(spec: SandboxSpec): Promise<{ client: SandboxdClient; started: 'no' | 'created' | 'recreated' }>;
  /** Stops the sandbox's processes and keeps the workspace. */
  hibernate(sessionId: string): Promise<void>;
  /** Stops the sandbox and deletes its workspace. */
  destroy(sessionId: string): Promise<void>;
  state(sessionId: string): Promise<SandboxRuntimeState>;
  /** Called after each tool call; the kubernetes provider stores the pod's vault proxy records then. */
  afterToolCall?(sessionId: string): Promise<void>;
}

/** sandboxd cannot be reached (the sandbox died or was stopped); the next ensure() restarts it. */
export class SandboxGoneError extends Error {
  override name = 'SandboxGoneError';
}

/** sandboxd answered with an error the caller caused (missing file, bad path …). */
export class SandboxRequestError extends Error {
  override name = 'SandboxRequestError';
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

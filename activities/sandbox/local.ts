// The `local` sandbox provider: one bubblewrap sandbox per session on this host, running sandboxd.
// Sandboxes are started detached (own session, no --die-with-parent) so they outlive a worker crash;
// any worker finds a running one again through its socket. The host-side start and stop run through
// the sandboxd binary (`sandboxd launch|stop`), which serialises them per sandbox with flock and
// puts the sandbox in its own cgroups. See harnesses/sandboxd/PROTOCOL.md.
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../lib/config.ts';
import { KeyedMutex } from '../../lib/keyed-mutex.ts';
import { closeSandboxVault, openSandboxDoor, SANDBOX_VAULT_DIR, vaultRunDir } from '../../vault-proxy/client.ts';
import { bwrapArgs, ETC_STUBS, type SandboxLimits } from './bwrap.ts';
import { EXIT_ALREADY_RUNNING, Launcher } from './launcher.ts';
import type { SandboxProvider, SandboxRuntimeState, SandboxSpec } from './provider.ts';
import { HttpSandboxdClient } from './sandboxd-client.ts';

export interface LocalSandboxOptions {
  /** Berth's data directory; sandboxes live in <dataDir>/sandboxes/<sessionId>/. */
  dataDir: string;
  limits: SandboxLimits;
  /** The static sandboxd binary (built by bin/setup). */
  sandboxdBin?: string;
  bwrapBin?: string;
  /** Where the cgroup v1 controllers are mounted (default /sys/fs/cgroup). Without writable pids and
   * memory controllers there, memory falls back to RLIMIT_DATA per process and processes are unlimited. */
  cgroupRoot?: string;
  /** How long a start may take before ensure() gives up. */
  startTimeoutMs?: number;
  /** The vault proxy (vault-proxy/): sandboxes get stubs and their one way out through it. Unset, or no
   * proxy running: a sandbox has no network at all. */
  vault?: { runDir: string; gatewayUrl?: string; gatewayApiKey?: string };
}

export const defaultSandboxdBin = fileURLToPath(new URL('../../.tools/bin/sandboxd', import.meta.url));

const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const HEALTH_TIMEOUT_MS = 2_000;

export function localOptionsFromConfig(config: Config): LocalSandboxOptions {
  return {
    dataDir: config.dataDir,
    limits: {
      memoryBytes: config.BERTH_SANDBOX_MEMORY_MB * 2 ** 20,
      cpuSeconds: config.BERTH_SANDBOX_CPU_S,
      pids: config.BERTH_SANDBOX_PIDS,
      fileBytes: config.BERTH_SANDBOX_FILE_MB * 2 ** 20,
    },
    vault: { runDir: vaultRunDir(config.dataDir, config.BERTH_VAULT_RUN_DIR), gatewayUrl: config.LITELLM_GATEWAY_URL, gatewayApiKey: config.LITELLM_API_KEY },
  };
}

/** Where one session's sandbox keeps its files. */
export function sandboxPaths(dataDir: string, sessionId: string) {
  if (!SESSION_ID.test(sessionId)) throw new Error(`invalid session id for a sandbox: ${JSON.stringify(sessionId)}`);
  const sessionDir = path.join(path.resolve(dataDir), 'sandboxes', sessionId);
  const runDir = path.join(sessionDir, 'run');
  const key = createHash('sha256').update(runDir).digest('hex').slice(0, 16);
  return {
    sessionDir,
    workspace: path.join(sessionDir, 'workspace'),
    runDir,
    /** Bound by `sandboxd launch` on the host; the sandbox only gets the open listening fd. */
    socket: path.join(runDir, 'sandboxd.sock'),
    /** The /etc stubs every sandbox binds read-only: the same for all, so written once (see writeEtcStubs). */
    etcDir: path.join(path.resolve(dataDir), 'sandbox-etc'),
    log: path.join(runDir, 'sandbox.log'),
    cgroupName: `sbx-${key}`,
    /** A unix socket path must fit in 108 bytes; deep data dirs go through a short symlink (see socketFor). */
    shortLink: path.join(os.tmpdir(), 'berth-sock', key),
  };
}

type Paths = ReturnType<typeof sandboxPaths>;

export class LocalSandboxProvider implements SandboxProvider {
  private readonly clients = new Map<string, HttpSandboxdClient>();
  private readonly mutex = new KeyedMutex();
  private readonly sandboxdBin: string;
  /** A launcher already in its cgroups, ready for the next start (see launcher.ts). */
  private spare: Launcher | undefined;
  private etcWritten: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: LocalSandboxOptions) {
    this.sandboxdBin = options.sandboxdBin ?? defaultSandboxdBin;
  }

  async ensure(spec: SandboxSpec) {
    const paths = sandboxPaths(this.options.dataDir, spec.sessionId);
    const client = await this.clientFor(spec.sessionId, paths);
    if (await running(paths, client)) return { client, started: 'no' as const };
    return this.mutex.run(spec.sessionId, async () => {
      if (await running(paths, client)) return { client, started: 'no' as const };
      const existed = existsSync(paths.workspace);
      await Promise.all([fs.mkdir(paths.workspace, { recursive: true }), fs.mkdir(paths.runDir, { recursive: true }), this.etcStubs(paths)]);
      const fresh = await this.start(spec, paths, client);
      return { client, started: !fresh ? ('no' as const) : existed ? ('recreated' as const) : ('created' as const) };
    });
  }

  hibernate(sessionId: string): Promise<void> {
    const paths = sandboxPaths(this.options.dataDir, sessionId);
    return this.mutex.run(sessionId, () => stopSandbox(this.sandboxdBin, paths.runDir));
  }

  destroy(sessionId: string): Promise<void> {
    const paths = sandboxPaths(this.options.dataDir, sessionId);
    return this.mutex.run(sessionId, async () => {
      await stopSandbox(this.sandboxdBin, paths.runDir);
      if (this.options.vault) await closeSandboxVault(this.options.vault.runDir, sessionId);
      this.clients.get(sessionId)?.close();
      this.clients.delete(sessionId);
      await fs.rm(paths.sessionDir, { recursive: true, force: true });
      await fs.rm(paths.shortLink, { force: true });
    });
  }

  async state(sessionId: string): Promise<SandboxRuntimeState> {
    const paths = sandboxPaths(this.options.dataDir, sessionId);
    if (!existsSync(paths.sessionDir)) return 'none';
    return (await running(paths, await this.clientFor(sessionId, paths))) ? 'running' : 'stopped';
  }

  /** Closes pooled connections and lets the spare launcher go (sandboxes keep running). */
  close(): void {
    this.closed = true;
    this.spare?.discard();
    this.spare = undefined;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  /** The /etc stubs, written by this provider's first start (a failed write is tried again by the next). */
  private etcStubs(paths: Paths): Promise<void> {
    this.etcWritten ??= writeEtcStubs(paths.etcDir).catch((err: unknown) => {
      this.etcWritten = undefined;
      throw err;
    });
    return this.etcWritten;
  }

  /** Launches the sandbox and waits for sandboxd. Returns false if another process had started it
   * (the launcher becomes bwrap and records its own pid, so the pidfile names the one that started). */
  private async start(spec: SandboxSpec, paths: Paths, client: HttpSandboxdClient, retry = true): Promise<boolean> {
    const timeoutMs = this.options.startTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const { limits } = this.options;
    const door = this.options.vault && (await openSandboxDoor({ ...this.options.vault, sessionId: spec.sessionId }));
    const launcher = this.spare?.usable ? this.spare : Launcher.spawn(this.sandboxdBin, this.options.cgroupRoot);
    this.spare = undefined;
    launcher.start({
      runDir: paths.runDir,
      cgroupName: paths.cgroupName,
      memoryBytes: limits.memoryBytes,
      pids: limits.pids,
      argv: [this.options.bwrapBin ?? 'bwrap', ...bwrapArgs({ ...spec.env, ...door?.env }, paths, this.sandboxdBin, limits, door && { ...door, sandboxDir: SANDBOX_VAULT_DIR })],
    });
    try {
      // Once launch has bound the socket, a health request waits in its backlog until sandboxd is up.
      for (let attempt = 0; ; attempt++) {
        if (await healthy(client, Math.max(100, deadline - Date.now()))) return (await recordedPid(paths)) === launcher.pid;
        if (launcher.exit !== null && launcher.exit !== EXIT_ALREADY_RUNNING) {
          throw new Error(`sandbox for session ${spec.sessionId} failed to start (exit ${launcher.exit}): ${tail(paths.log)}`);
        }
        if (Date.now() > deadline) {
          if (launcher.exit === EXIT_ALREADY_RUNNING && retry) {
            // A live but unresponsive sandbox holds the run dir: replace it.
            await stopSandbox(this.sandboxdBin, paths.runDir);
            return this.start(spec, paths, client, false);
          }
          throw new Error(`sandbox for session ${spec.sessionId} did not answer within ${timeoutMs} ms: ${tail(paths.log)}`);
        }
        await sleep(attempt < 50 ? 1 : 10);
      }
    } finally {
      // Replace the spare once the caller has its sandbox (spawning blocks the event loop briefly).
      setImmediate(() => {
        if (!this.closed) this.spare ??= Launcher.spawn(this.sandboxdBin, this.options.cgroupRoot);
      });
    }
  }

  private async clientFor(sessionId: string, paths: Paths): Promise<HttpSandboxdClient> {
    let client = this.clients.get(sessionId);
    if (!client) {
      client = new HttpSandboxdClient({ socketPath: await socketFor(paths) });
      this.clients.set(sessionId, client);
    }
    return client;
  }
}

export function localSandboxProvider(options: LocalSandboxOptions): LocalSandboxProvider {
  return new LocalSandboxProvider(options);
}

/**
 * Stops every local sandbox under a data dir (workspaces are kept). The supervisor calls it when it
 * starts and when it stops. A stopped sandbox leaves none of its pidfile, cgroups record and socket
 * (`sandboxd stop` removes them; a killed one leaves them), so only those with one are stopped.
 */
export async function stopAllLocalSandboxes(dataDir: string, sandboxdBin = defaultSandboxdBin): Promise<void> {
  const root = path.join(path.resolve(dataDir), 'sandboxes');
  const sessions = await fs.readdir(root).catch(() => [] as string[]);
  const all = sessions.filter((s) => SESSION_ID.test(s)).map((s) => sandboxPaths(dataDir, s));
  const mayRun = (p: Paths) => [path.join(p.runDir, 'pid'), path.join(p.runDir, 'cgroups'), p.socket].some((f) => existsSync(f));
  await Promise.all(all.filter(mayRun).map((p) => stopSandbox(sandboxdBin, p.runDir)));
}

async function healthy(client: HttpSandboxdClient, timeoutMs = HEALTH_TIMEOUT_MS): Promise<boolean> {
  try {
    await client.health(timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/** Without its socket no sandbox can be listening: a cold start need not wait for a refused connection. */
async function running(paths: Paths, client: HttpSandboxdClient): Promise<boolean> {
  return existsSync(paths.socket) && (await healthy(client));
}

/**
 * Writes the /etc stubs (once per provider, so a file's content is always this version's). Each file
 * is replaced by a rename, so a sandbox starting meanwhile binds the old file or the new, never a
 * half-written one.
 */
async function writeEtcStubs(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await Promise.all(
    Object.entries(ETC_STUBS).map(async ([name, content]) => {
      const file = path.join(dir, name);
      const tmp = `${file}.${randomUUID()}.tmp`; // providers in other workers (or this one) may write at once
      await fs.writeFile(tmp, content);
      await fs.rename(tmp, file);
    }),
  );
}

/** The socket path to connect to: the real one, or a short symlink to its directory when too long. */
async function socketFor(paths: Paths): Promise<string> {
  if (Buffer.byteLength(paths.socket) < 100) return paths.socket;
  await fs.mkdir(path.dirname(paths.shortLink), { recursive: true, mode: 0o700 });
  const current = await fs.readlink(paths.shortLink).catch(() => null);
  if (current !== paths.runDir) {
    await fs.rm(paths.shortLink, { force: true });
    await fs.symlink(paths.runDir, paths.shortLink).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  return path.join(paths.shortLink, path.basename(paths.socket));
}

function stopSandbox(sandboxdBin: string, runDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(sandboxdBin, ['stop', '--run-dir', runDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sandboxd stop ${runDir} failed (${code}): ${stderr.trim()}`))));
  });
}

async function recordedPid(paths: Paths): Promise<number | undefined> {
  const raw = await fs.readFile(path.join(paths.runDir, 'pid'), 'utf8').catch(() => '');
  return Number(raw.split(' ')[0]) || undefined;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ') || '(empty log)';
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

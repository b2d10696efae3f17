// One test file's Berth: its own worker and web process (child processes, so tests can SIGKILL
// them) on the shared test stack, with a task queue and data dir of its own.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sandboxPaths, stopAllLocalSandboxes } from '../../activities/sandbox/local.ts';
import type { ChildHandle } from '../../bin/stack/child.ts';
import type { Script } from '../../bin/stack/scripted-model.ts';
import { apiClient } from './api-client.ts';
import { TEST_ADMIN_KEY, modelRequests, registerScript, startWeb, startWorker, testEnv, type TestEnv } from './processes.ts';

export interface BerthOptions {
  name: string;
  env?: NodeJS.ProcessEnv;
  /** Use this Temporal server instead of the shared one. */
  temporalAddress?: string;
}

export async function startBerth(opts: BerthOptions) {
  const t: TestEnv = testEnv(opts.name, { ...opts.env, ...(opts.temporalAddress ? { TEMPORAL_ADDRESS: opts.temporalAddress } : {}) });
  let worker: ChildHandle = await startWorker(t);
  const web = await startWeb(t);
  const api = apiClient(web.url, TEST_ADMIN_KEY);
  let models = 0;
  const createAgent = async (fields: Record<string, unknown>): Promise<any> => {
    const res = await api.post('/v1/agents', { name: `agent ${t.name}`, ...fields });
    if (res.status !== 201) throw new Error(`create agent: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  const sandboxPid = (sessionId: string): number | undefined => {
    const { runDir } = sandboxPaths(t.dataDir, sessionId);
    try {
      return Number(readFileSync(path.join(runDir, 'pid'), 'utf8').split(' ')[0]) || undefined;
    } catch {
      return undefined;
    }
  };
  const alive = (pid: number | undefined) => {
    if (!pid) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  return {
    api,
    url: web.url,
    dataDir: t.dataDir,
    temporalAddress: String(t.env.TEMPORAL_ADDRESS),
    taskQueue: t.taskQueue,
    /** A model name of its own for this file's scripted model (agents use it as their model). */
    model: (label: string) => `scripted/${t.name}-${label}-${++models}`,
    script: (model: string, script: Script) => registerScript(model.replace(/^scripted\//, ''), script),
    requests: (model: string) => modelRequests(model.replace(/^scripted\//, '')) as Promise<any[]>,
    createAgent,
    /** A new session of a new agent on `model`; returns the session's id. */
    async newSession(model: string): Promise<string> {
      const agent = await createAgent({ model });
      return (await api.post('/v1/sessions', { agent_id: agent.id })).body.id as string;
    },
    /** Sends `content` to the session and returns once its turn's first tool call has started. */
    async sendUntilToolStarted(sessionId: string, content: string): Promise<void> {
      const started = api.events(sessionId, { until: (e) => e.type === 'tool.started' });
      await api.post(`/v1/sessions/${sessionId}/messages`, { content });
      await started;
    },
    workspace: (sessionId: string, file = '') => path.join(sandboxPaths(t.dataDir, sessionId).workspace, file),
    /** SIGKILL to the worker's whole process group: no shutdown hooks run. */
    killWorker(): void {
      process.kill(-worker.pid, 'SIGKILL');
    },
    async startWorker(): Promise<void> {
      worker = await startWorker(t);
    },
    /** A deploy: SIGTERM to the worker, which drains for its grace time, while its successor starts. */
    async replaceWorker(): Promise<void> {
      const draining = worker.stop(60_000);
      worker = await startWorker(t);
      await draining;
    },
    /** Another web process on this file's stack (with `env` on top), e.g. one to SIGKILL; the caller stops it. */
    startWeb: (env: NodeJS.ProcessEnv = {}) => startWeb(t, env),
    /** SIGKILL to the sandbox's whole process tree (bubblewrap and everything under it). */
    async killSandbox(sessionId: string): Promise<void> {
      const pid = sandboxPid(sessionId);
      if (!pid) throw new Error(`no sandbox pid for ${sessionId}`);
      const tree = execFileSync('ps', ['-e', '-o', 'pid=,ppid=']).toString().trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
      const victims = [pid];
      for (let i = 0; i < victims.length; i++) for (const [p, pp] of tree) if (pp === victims[i]) victims.push(p!);
      for (const p of victims) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
      for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    },
    sandboxRunning: async (sessionId: string) => alive(sandboxPid(sessionId)),
    /** Stops the worker, the web process and every sandbox this file's sessions started. */
    async stop(): Promise<void> {
      await Promise.all([worker.stop(), web.stop()]);
      await stopAllLocalSandboxes(t.dataDir);
    },
  };
}

export type Berth = Awaited<ReturnType<typeof startBerth>>;

// Platform benchmark against the real stack with a zero-latency scripted model:
// - overhead per turn: (HTTP accept → model request) + (model reply end → turn.completed on SSE),
//   and a separate pass that splits it into Berth's part and the LiteLLM gateway's part by a tap
//   at the gateway's door;
// - turns per second with 50 and 200 concurrent sessions, with errors counted;
// - worker and web RSS, idle and at peak.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWeb, startWorker } from '../bin/stack/berth.ts';
import type { ChildHandle } from '../bin/stack/child.ts';
import { freePort } from '../bin/stack/ports.ts';
import { startScriptedStack } from '../bin/stack/scripted-stack.ts';
import { apiClient } from '../test/support/api-client.ts';
import { lastUserMessage, startGatewayTap, type TapMarks } from './gateway-tap.ts';
import { round, summary } from './stats.ts';
import { temporalSplit } from './temporal-split.ts';
import { scrapeWorkerMetrics, workerMeans } from './worker-metrics.ts';
import { ensureDevVaultKey } from '../lib/vault.ts';

const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const now = () => performance.timeOrigin + performance.now();
/** Turns per overhead pass; the first WARMUP warm up code paths and connections and are not counted. */
const TURNS = 70;
const WARMUP = 20;
/**
 * The pause before each next message in the idle pass: a person (or a script) reads the reply
 * first. Sent the instant `turn.completed` arrives, a message waits behind the turn's own last
 * bookkeeping (its closing workflow task, the gateway's logging), which the back-to-back pass shows.
 */
const PAUSE_MS = 250;

type ModelMarks = Map<string, { received: number; replied: number }>;
type Api = ReturnType<typeof apiClient>;

export async function benchPlatform(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'));
  // The scripted model's request and reply times, by the user message that started the turn.
  const marks: ModelMarks = new Map();
  const stack = await startScriptedStack(dir, {
    received: (req) => marks.set(lastUserMessage(req), { received: now(), replied: 0 }),
    replied: (req) => {
      const m = marks.get(lastUserMessage(req));
      if (m) m.replied = now();
    },
  });
  const tap = await startGatewayTap(stack.gateway.url, now);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    BERTH_DATA_DIR: path.join(dir, 'berth'),
    DATABASE_URL: stack.pg.url,
    TEMPORAL_ADDRESS: stack.temporal.address,
    LITELLM_GATEWAY_URL: stack.gateway.url,
    LITELLM_API_KEY: stack.gateway.apiKey,
    BERTH_ADMIN_API_KEY: ADMIN_KEY,
    BERTH_VAULT_KEY: ensureDevVaultKey(path.join(dir, 'berth')),
    LOG_LEVEL: 'info',
  };
  const port = await freePort();
  let worker: ChildHandle | undefined;
  let web: (ChildHandle & { url: string }) | undefined;
  try {
    web = await startWeb({ env: { ...env, PORT: String(port) }, port, logPath: path.join(dir, 'logs/web.log') });
    const api = apiClient(web.url, ADMIN_KEY);
    const script = (model: string, steps: unknown) =>
      fetch(`${stack.model.url.replace(/\/v1$/, '')}/__scripts/${model}`, { method: 'PUT', body: JSON.stringify(steps) });
    await script('bench-text', [{ text: 'ok' }]);
    await script('bench-tool', [{ tool_calls: [{ name: 'bash', arguments: { command: 'echo hi' } }] }, { text: 'ok' }]);
    const agent = async (model: string) => (await api.post('/v1/agents', { name: model, model: `scripted/${model}` })).body.id as string;
    const textAgent = await agent('bench-text');
    const toolAgent = await agent('bench-tool');
    const session = async (agentId: string) => (await api.post('/v1/sessions', { agent_id: agentId })).body.id as string;
    const turns = async (label: string, pauseMs: number, more: Pick<MeasureOptions, 'taps' | 'afterWarmup'> = {}) =>
      measureTurns(api, await session(textAgent), { label, pauseMs, marks, ...more });

    // The split: a worker whose model requests go through the tap, and which serves its metrics.
    const metricsAddress = `127.0.0.1:${await freePort()}`;
    worker = await startWorker({
      env: { ...env, LITELLM_GATEWAY_URL: tap.url, BERTH_WORKER_METRICS_ADDRESS: metricsAddress },
      logPath: path.join(dir, 'logs/worker-tapped.log'),
    });
    let warm = new Map<string, number>();
    const tapped = await turns('tapped', PAUSE_MS, {
      taps: tap.marks,
      afterWarmup: async () => {
        warm = await scrapeWorkerMetrics(metricsAddress);
      },
    });
    const inWorker = workerMeans(warm, await scrapeWorkerMetrics(metricsAddress));
    const berthInSplit = await temporalSplit(stack.temporal.address, tapped.sid, tapped.split);
    await worker.stop();

    // Everything else: a worker that talks to the gateway directly, as in production.
    worker = await startWorker({ env, logPath: path.join(dir, 'logs/worker.log') });
    const rss = { worker: new RssSampler(worker.pid), web: new RssSampler(web.pid) };
    const idle = await turns('idle', PAUSE_MS);
    const backToBack = await turns('back-to-back', 0);
    const idleRss = { worker_mb: rss.worker.sample(), web_mb: rss.web.sample() };

    const processes = { worker: worker.pid, web: web.pid, temporal: stack.temporal.pid, litellm: stack.gateway.pid, postgres: stack.pg.pid };
    const load = async (sessions: number, turnsEach: number, agentId: string) => {
      const ids = await Promise.all(Array.from({ length: sessions }, () => session(agentId)));
      const stopSampling = [rss.worker.every(200), rss.web.every(200)];
      const cpuBefore = cpuSeconds(processes);
      const errors: Record<string, number> = {};
      const latencies: number[] = [];
      const started = now();
      await Promise.all(
        ids.map(async (id, s) => {
          for (let t = 0; t < turnsEach; t++) {
            const t0 = now();
            const res = await api.post(`/v1/sessions/${id}/messages?wait=true`, { content: `load ${sessions} ${s} ${t}` }).catch((err: Error) => err);
            if (!(res instanceof Error) && res.status === 200 && res.body.outcome === 'completed') latencies.push(now() - t0);
            else {
              const kind = res instanceof Error ? `request failed: ${res.message}` : `${res.status} ${res.body?.error?.code ?? res.body?.outcome}`;
              errors[kind] = (errors[kind] ?? 0) + 1;
            }
          }
        }),
      );
      const seconds = (now() - started) / 1000;
      const cpuAfter = cpuSeconds(processes);
      stopSampling.forEach((stop) => stop());
      const failed = Object.values(errors).reduce((a, n) => a + n, 0);
      const turns = sessions * turnsEach - failed;
      const cpuPerTurn = Object.fromEntries(Object.entries(cpuAfter).map(([k, v]) => [k, round(((v - (cpuBefore[k] ?? 0)) * 1000) / turns)]));
      await Promise.all(ids.map((id) => api.delete(`/v1/sessions/${id}`)));
      return { sessions, turns: sessions * turnsEach, errors: failed, error_kinds: errors, turns_per_s: round(turns / seconds), turn_latency_ms: summary(latencies), cpu_ms_per_turn: cpuPerTurn };
    };
    const c50 = await load(50, 10, textAgent);
    const c200 = await load(200, 5, textAgent);
    const c50tools = await load(50, 4, toolAgent);

    return {
      overhead_per_turn_ms: summary(idle.total),
      overhead_per_turn_back_to_back_ms: summary(backToBack.total),
      // The split pass (through the tap): Berth's share and the LiteLLM proxy's share.
      split_pass_overhead_per_turn_ms: summary(tapped.total),
      berth_overhead_per_turn_ms: summary(tapped.berth),
      berth_accept_to_gateway_request_ms: summary(tapped.berthIn),
      berth_accept_to_gateway_request_split: berthInSplit,
      // Means over the split pass's counted turns, from the worker's SDK metrics.
      worker_sdk_means: inWorker,
      berth_gateway_answer_to_sse_turn_completed_ms: summary(tapped.berthOut),
      gateway_overhead_per_turn_ms: summary(tapped.gateway),
      concurrent_50: c50,
      concurrent_200: c200,
      concurrent_50_with_bash_tool: c50tools,
      rss_idle: idleRss,
      rss_peak: { worker_mb: rss.worker.peak, web_mb: rss.web.peak },
    };
  } finally {
    await Promise.all([worker?.stop(), web?.stop()]);
    await tap.stop();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface MeasureOptions {
  label: string;
  pauseMs: number;
  marks: ModelMarks;
  taps?: Map<string, TapMarks>;
  /** Called before the first counted turn. */
  afterWarmup?: () => Promise<void>;
}

/**
 * Sends TURNS messages one at a time on one session, each after the previous turn's
 * `turn.completed` arrived on the open SSE stream (plus pauseMs), and times the platform around the
 * scripted model. With the tap's marks it also splits each turn at the gateway's door.
 */
async function measureTurns(api: Api, sid: string, { label, pauseMs, marks, taps, afterWarmup }: MeasureOptions) {
  const completed = new Map<number, (at: number) => void>();
  const stream = api.events(sid, {
    until: (e) => e.type === 'turn.completed' && e.data.turn === TURNS,
    onEvent: (e) => e.type === 'turn.completed' && completed.get(e.data.turn)?.(now()),
    timeoutMs: 300_000,
  });
  const parts = { total: [] as number[], berth: [] as number[], gateway: [] as number[], berthIn: [] as number[], berthOut: [] as number[] };
  const split: { accepted: number; sent: number }[] = [];
  for (let turn = 1; turn <= TURNS; turn++) {
    if (turn === WARMUP + 1) await afterWarmup?.();
    const content = `${label} ${turn}`;
    const ended = new Promise<number>((resolve) => completed.set(turn, resolve));
    const accepted = now();
    await api.post(`/v1/sessions/${sid}/messages`, { content });
    const at = await ended;
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    const m = marks.get(content);
    if (!m || turn <= WARMUP) continue;
    parts.total.push(m.received - accepted + (at - m.replied));
    const t = taps?.get(content);
    if (!t) continue;
    const berthIn = t.sent - accepted;
    const berthOut = at - t.answered;
    parts.berth.push(berthIn + berthOut);
    parts.gateway.push(m.received - t.sent + (t.answered - m.replied));
    parts.berthIn.push(berthIn);
    parts.berthOut.push(berthOut);
    split.push({ accepted, sent: t.sent });
  }
  await stream;
  return { sid, ...parts, split };
}

/**
 * CPU seconds used so far by each process and its descendants, counting children that exited
 * (Postgres serves each connection from a child that ends with it).
 */
function cpuSeconds(roots: Record<string, number>): Record<string, number> {
  const procs = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return [{ pid: Number(pid), ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100 }];
    } catch {
      return []; // exited meanwhile
    }
  });
  const total = (pid: number): number => procs.filter((p) => p.pid === pid).reduce((a, p) => a + p.cpu, 0) + procs.filter((p) => p.ppid === pid).reduce((a, p) => a + total(p.pid), 0);
  return Object.fromEntries(Object.entries(roots).map(([name, pid]) => [name, total(pid)]));
}

class RssSampler {
  peak = 0;
  constructor(private readonly pid: number) {}

  sample(): number {
    const m = readFileSync(`/proc/${this.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    const mb = m ? round(Number(m[1]) / 1024) : 0;
    this.peak = Math.max(this.peak, mb);
    return mb;
  }

  every(ms: number): () => void {
    const timer = setInterval(() => this.sample(), ms);
    return () => clearInterval(timer);
  }
}

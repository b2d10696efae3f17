// Vault proxy benchmark: the latency a request gains by going through the proxy (keep-alive on both
// legs, a stub swapped in every request) against going straight to the upstream, and streaming
// throughput each way. Upstream and client share this process; the proxy runs in a child process of
// its own (this file with --serve-proxy), with a recorder that only counts, so Postgres is not measured.
import { fork } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newStub } from '../lib/vault.ts';
import { createLogger } from '../lib/log.ts';
import { CertificateAuthority } from '../vault-proxy/ca.ts';
import { SessionProxy } from '../vault-proxy/proxy.ts';
import type { SessionView } from '../vault-proxy/forward.ts';
import { createUpstreamAgents } from '../vault-proxy/upstream.ts';
import { TunnelAgent, download, request, startUpstream, upload } from '../test/vault/support.ts';
import { tempDir } from '../test/support/temp.ts';
import { round, summary } from './stats.ts';

const REQUESTS = 2_000;
const WARMUP = 200;
const STREAM_MB = 200;

interface ProxyParams {
  dir: string;
  socketPath: string;
  upstreamCaFile: string;
  stub: string;
  value: string;
}

async function serveProxy(p: ProxyParams): Promise<void> {
  const view: SessionView = {
    sessionId: 'ses_bench',
    secrets: [{ name: 'BENCH_TOKEN', stub: p.stub, value: p.value, hosts: ['localhost'], inject: ['header', 'basic_auth', 'query'] }],
    egress: { policy: { allow: ['localhost'], deny: [] }, gatewayHosts: [], credentialHosts: [] },
  };
  let recorded = 0;
  const recorder = { record: () => void recorded++, flush: async () => {} };
  const ca = await CertificateAuthority.loadOrCreate(path.join(p.dir, 'berth-ca'));
  const proxy = new SessionProxy(view.sessionId, async () => view, { ca, recorder, log: createLogger('bench'), ...createUpstreamAgents(p.upstreamCaFile) });
  await proxy.listen(p.socketPath);
  process.send!({ ready: true, caPem: ca.certPem });
  process.on('message', () => process.send!({ rss: process.memoryUsage().rss, recorded }));
}

async function timeRequests(url: string, agent: https.Agent, headers: Record<string, string>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + REQUESTS; i++) {
    const t = performance.now();
    const res = await request(url, { agent, headers });
    if (res.status !== 200) throw new Error(`bench request failed: ${res.status} ${res.body}`);
    if (i >= WARMUP) times.push(performance.now() - t);
  }
  return times;
}

async function mbPerSecond(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return round(STREAM_MB / ((performance.now() - t) / 1000));
}

export async function benchVault(): Promise<Record<string, number>> {
  const tmp = tempDir('berth-bench-vault-');
  const upstream = await startUpstream(tmp.dir);
  const params: ProxyParams = {
    dir: tmp.dir, socketPath: path.join(tmp.dir, 'proxy.sock'), upstreamCaFile: upstream.caFile, stub: newStub('BENCH_TOKEN'), value: 'bench-real-value-0123456789',
  };
  const child = fork(fileURLToPath(import.meta.url), ['--serve-proxy', JSON.stringify(params)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const ask = <T>() => new Promise<T>((resolve) => child.once('message', (m) => resolve(m as T)));
  try {
    const { caPem } = await ask<{ caPem: string }>();
    child.send('stats');
    const idle = await ask<{ rss: number }>();
    const url = (p: string) => `https://localhost:${upstream.httpsPort}${p}`;
    const upstreamCa = (await import('node:fs')).readFileSync(upstream.caFile, 'utf8');
    const direct = new https.Agent({ keepAlive: true, ca: upstreamCa, maxSockets: 1 });
    const viaProxy = new TunnelAgent(params.socketPath, caPem);
    const directTimes = summary(await timeRequests(url('/echo'), direct, { authorization: `Bearer ${params.value}` }));
    const proxyTimes = summary(await timeRequests(url('/echo'), viaProxy, { authorization: `Bearer ${params.stub}` }));
    const directDown = await mbPerSecond(() => download(url(`/download?mb=${STREAM_MB}`), direct));
    const proxyDown = await mbPerSecond(() => download(url(`/download?mb=${STREAM_MB}`), viaProxy));
    const directUp = await mbPerSecond(() => upload(url('/upload'), direct, STREAM_MB << 20));
    const proxyUp = await mbPerSecond(() => upload(url('/upload'), viaProxy, STREAM_MB << 20));
    child.send('stats');
    const { rss } = await ask<{ rss: number }>();
    direct.destroy();
    viaProxy.destroy();
    return {
      requests: REQUESTS,
      direct_p50_ms: directTimes.p50,
      proxy_p50_ms: proxyTimes.p50,
      added_p50_ms: round(proxyTimes.p50 - directTimes.p50),
      p50_ratio: round(proxyTimes.p50 / directTimes.p50),
      direct_p99_ms: directTimes.p99,
      proxy_p99_ms: proxyTimes.p99,
      download_direct_mb_s: directDown,
      download_proxy_mb_s: proxyDown,
      upload_direct_mb_s: directUp,
      upload_proxy_mb_s: proxyUp,
      proxy_rss_idle_mb: round(idle.rss / 2 ** 20),
      proxy_rss_after_streams_mb: round(rss / 2 ** 20),
    };
  } finally {
    child.kill();
    await upstream.close();
    tmp.remove();
  }
}

if (process.argv[2] === '--serve-proxy') await serveProxy(JSON.parse(process.argv[3]!) as ProxyParams);
else if (import.meta.url === `file://${process.argv[1]}`) console.log(JSON.stringify(await benchVault(), null, 2));

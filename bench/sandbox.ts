// Sandbox benchmark: cold start (ensure() on a new session until sandboxd answers) and exec round trip.
import { mkdtempSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { localSandboxProvider, stopAllLocalSandboxes } from '../activities/sandbox/local.ts';
import { percentile, round } from './stats.ts';

const STARTS = 50;
const EXECS = 100;

export async function benchSandbox(): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-sbx-'));
  const provider = localSandboxProvider({
    dataDir,
    limits: { memoryBytes: 2048 * 2 ** 20, cpuSeconds: 3600, pids: 512, fileBytes: 1024 * 2 ** 20 },
  });
  try {
    await provider.ensure({ sessionId: 'warmup', env: {} }); // load code paths and the binaries' pages
    const starts: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      const t = performance.now();
      await provider.ensure({ sessionId: `cold-${i}`, env: { BENCH: String(i) } });
      starts.push(performance.now() - t);
      await provider.hibernate(`cold-${i}`); // keep only one running, as on a quiet host
    }
    const { client } = await provider.ensure({ sessionId: 'exec', env: {} });
    const execs: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      const t = performance.now();
      await client.exec({ id: `bench-${i}`, command: 'true', timeoutMs: 10_000 }, () => {});
      execs.push(performance.now() - t);
    }
    const health: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      const t = performance.now();
      await provider.ensure({ sessionId: 'exec', env: {} });
      health.push(performance.now() - t);
    }
    return {
      sandbox_cold_start_p50_ms: round(percentile(starts, 50)),
      sandbox_cold_start_p99_ms: round(percentile(starts, 99)),
      sandbox_exec_roundtrip_p50_ms: round(percentile(execs, 50)),
      sandbox_exec_roundtrip_p99_ms: round(percentile(execs, 99)),
      sandbox_ensure_running_p50_ms: round(percentile(health, 50)),
    };
  } finally {
    provider.close();
    await stopAllLocalSandboxes(dataDir);
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchSandbox(), null, 2));
}

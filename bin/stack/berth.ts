// Berth's own processes: the worker and the web process, each one node process (tsx as a loader,
// not a wrapper), so its pid is the process that does the work.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnLogged, waitReady, type ChildHandle } from './child.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const node = (entry: string) => ({ command: process.execPath, args: ['--import', 'tsx', entry] });

export interface BerthProcessOptions {
  env: NodeJS.ProcessEnv;
  logPath: string;
  readyTimeoutMs?: number;
}

export async function startWorker(opts: BerthProcessOptions): Promise<ChildHandle> {
  const offset = fs.existsSync(opts.logPath) ? fs.statSync(opts.logPath).size : 0;
  const child = spawnLogged({ name: 'worker', ...node('bin/worker.ts'), cwd: ROOT, env: opts.env, logPath: opts.logPath });
  // The worker has no port: it is ready once it logs so (after bundling the workflow code).
  await waitReady(child, async () => logSince(opts.logPath, offset).includes('"msg":"worker ready"'), opts.readyTimeoutMs ?? 120_000);
  return child;
}

export async function startWeb(opts: BerthProcessOptions & { port: number }): Promise<ChildHandle & { url: string }> {
  const child = spawnLogged({ name: 'web', ...node('bin/web.ts'), cwd: ROOT, env: opts.env, logPath: opts.logPath });
  const url = `http://127.0.0.1:${opts.port}`;
  await waitReady(child, () => isReady(url), opts.readyTimeoutMs ?? 60_000);
  return Object.assign(child, { url });
}

function logSince(logPath: string, offset: number): string {
  const fd = fs.openSync(logPath, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    fs.readSync(fd, buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

async function isReady(url: string): Promise<boolean> {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
  return res.ok;
}

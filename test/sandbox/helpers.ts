// Shared setup for the sandbox tests: real bubblewrap sandboxes under a temp data dir.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  localSandboxProvider,
  sandboxPaths,
  stopAllLocalSandboxes,
  type LocalSandboxOptions,
  type LocalSandboxProvider,
} from '../../activities/sandbox/local.ts';
import type { SandboxLimits } from '../../activities/sandbox/bwrap.ts';
import type { ExecResult, SandboxdClient } from '../../activities/sandbox/provider.ts';

export const defaultLimits: SandboxLimits = { memoryBytes: 512 * 2 ** 20, cpuSeconds: 120, pids: 256, fileBytes: 64 * 2 ** 20 };

export interface Harness {
  dataDir: string;
  provider: LocalSandboxProvider;
  cleanup(): Promise<void>;
}

export function harness(
  limits: SandboxLimits = defaultLimits,
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'berth-sbx-')),
  extra: Partial<LocalSandboxOptions> = {},
): Harness {
  const provider = localSandboxProvider({ dataDir, limits, ...extra });
  return {
    dataDir,
    provider,
    async cleanup() {
      provider.close();
      await stopAllLocalSandboxes(dataDir);
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Ran extends ExecResult {
  stdout: string;
  stderr: string;
}

let counter = 0;

export async function run(client: SandboxdClient, command: string, timeoutMs = 15_000): Promise<Ran> {
  let stdout = '';
  let stderr = '';
  const result = await client.exec({ id: `t${process.pid}-${++counter}`, command, timeoutMs }, (c) => {
    if (c.stream === 'stdout') stdout += c.data;
    else stderr += c.data;
  });
  return { ...result, stdout, stderr };
}

/** The outer bwrap pid recorded by `sandboxd launch`. */
export function sandboxPid(dataDir: string, sessionId: string): number {
  return Number(readFileSync(path.join(sandboxPaths(dataDir, sessionId).runDir, 'pid'), 'utf8').split(' ')[0]);
}

/** Host pids below root, from /proc. */
export function hostDescendants(root: number): number[] {
  const parent = new Map<number, number>();
  const pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
  for (const name of pids) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(name, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited while we looked
    }
  }
  return [...parent.keys()].filter((pid) => {
    for (let p = parent.get(pid); p !== undefined && p > 0; p = parent.get(p)) if (p === root) return true;
    return false;
  });
}

// Temporary directories for tests, under the OS temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A temp dir that is removed when the running test finishes. */
export function tempDirForTest(prefix: string): string {
  const { dir, remove } = tempDir(prefix);
  onTestFinished(remove);
  return dir;
}

// Secrets the embedded stack generates once and keeps under the data directory (mode 0600).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Reads <dataDir>/<name>, or creates it with a fresh random value. `created` tells which. */
export function storedSecret(dataDir: string, name: string, prefix: string): { value: string; path: string; created: boolean } {
  const file = path.join(dataDir, name);
  try {
    const value = fs.readFileSync(file, 'utf8').trim();
    if (value) return { value, path: file, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const value = `${prefix}${randomBytes(24).toString('base64url')}`;
  fs.writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'w' });
  fs.chmodSync(file, 0o600);
  return { value, path: file, created: true };
}

// Keeps the embedded stack's logs from filling the disk: a log over its limit is copied to
// <name>.log.1 (replacing the one before) and emptied in place. In place, because each child holds
// its log open (spawnLogged hands it the file as stdout and stderr); it opened it for appending, so
// after the truncation its next line lands at the new start rather than at its old offset.
import fs from 'node:fs';
import path from 'node:path';

/** Rotates each `*.log` in `dir` that has grown past `maxBytes`; returns the rotated files. */
export function rotateLogs(dir: string, maxBytes: number): string[] {
  const rotated: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.log')) continue;
    const file = path.join(dir, name);
    if (fs.statSync(file).size <= maxBytes) continue;
    rotateOne(file);
    rotated.push(file);
  }
  return rotated;
}

function rotateOne(file: string): void {
  const old = `${file}.1`;
  fs.copyFileSync(file, old);
  // Lines written while it copied go after it; only those written between this catch-up and the
  // truncation (microseconds) are lost, as with logrotate's copytruncate.
  const copied = fs.statSync(old).size;
  const grown = fs.statSync(file).size;
  if (grown > copied) {
    const fd = fs.openSync(file, 'r');
    try {
      const rest = Buffer.alloc(grown - copied);
      fs.readSync(fd, rest, 0, rest.length, copied);
      fs.appendFileSync(old, rest);
    } finally {
      fs.closeSync(fd);
    }
  }
  fs.truncateSync(file, 0);
}

// A log that passes its limit is rotated while its process keeps writing to it, as `npm start`'s
// children do: the process's next lines start the log afresh, and next to nothing is lost.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnLogged } from '../../bin/stack/child.ts';
import { rotateLogs } from '../../bin/stack/log-rotation.ts';
import { tempDirForTest } from '../support/temp.ts';

const numbers = (file: string) => [...fs.readFileSync(file, 'utf8').matchAll(/^line (\d+)$/gm)].map((m) => Number(m[1]));
const contiguous = (ns: number[]) => ns.every((n, i) => i === 0 || n === ns[i - 1]! + 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits until the writer has put a whole line in the emptied log: a busy machine can hold it back a while. */
async function lineWritten(file: string): Promise<void> {
  for (let i = 0; i < 1_000 && !fs.readFileSync(file, 'utf8').includes('\n'); i++) await sleep(5);
}

describe('rotateLogs', () => {
  it('rotates a log its process is writing, which goes on writing at the start of the emptied log', async () => {
    const dir = tempDirForTest('berth-logs-');
    const logPath = path.join(dir, 'writer.log');
    // About 2 MB a second, in lines it numbers.
    const script = 'let i = 0; setInterval(() => { for (let k = 0; k < 200; k++) console.log(`line ${i++}`); }, 1);';
    const writer = spawnLogged({ name: 'writer', command: process.execPath, args: ['-e', script], logPath });
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'x'.repeat(100_000)); // not a log
    fs.writeFileSync(path.join(dir, 'small.log'), 'x'.repeat(1_000));
    const limit = 256 * 1024;
    try {
      let rotations = 0;
      for (let i = 0; i < 100 && rotations < 3; i++) {
        await sleep(50);
        const rotated = rotateLogs(dir, limit);
        expect(rotated.every((f) => f === logPath)).toBe(true);
        if (rotated.length === 0) continue;
        rotations++;
        await lineWritten(logPath);
        // Written at the emptied log's start: no hole where the old content was.
        const size = fs.statSync(logPath).size;
        expect(size).toBeLessThan(limit);
        expect(fs.readFileSync(logPath, 'utf8').startsWith('line ')).toBe(true);
      }
      expect(rotations).toBe(3);

      // The rotated part ends where the live log begins, give or take the lines written in the
      // instant between catching up and emptying it.
      const before = numbers(`${logPath}.1`);
      await lineWritten(logPath);
      const after = numbers(logPath);
      expect(contiguous(before) && contiguous(after)).toBe(true);
      const lost = after[0]! - before[before.length - 1]! - 1;
      expect(lost).toBeGreaterThanOrEqual(0);
      expect(lost).toBeLessThan(1_000);
    } finally {
      await writer.stop();
    }
    expect(fs.statSync(path.join(dir, 'small.log')).size).toBe(1_000);
    expect(fs.existsSync(path.join(dir, 'small.log.1'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'notes.txt.1'))).toBe(false);
  });
});

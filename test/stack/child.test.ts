// A child that dies while starting is reported with the cause from its latest start, even when a
// long dump (a Go panic's goroutines) follows it.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnLogged, waitReady } from '../../bin/stack/child.ts';
import { tempDirForTest } from '../support/temp.ts';

function crashingChild(logPath: string, cause: string) {
  const script = `console.log('booting'); console.error(${JSON.stringify(cause)}); for (let i = 0; i < 40; i++) console.error('\\tframe ' + i); process.exit(2);`;
  return spawnLogged({ name: 'crasher', command: process.execPath, args: ['-e', script], logPath });
}

describe('waitReady', () => {
  it('names the cause of a start-up crash from the latest start only', async () => {
    const logPath = path.join(tempDirForTest('berth-child-'), 'crasher.log');
    const never = async () => false;
    await expect(waitReady(crashingChild(logPath, 'panic: the earlier start'), never, 10_000)).rejects.toThrow(/the earlier start/);

    const failure = waitReady(crashingChild(logPath, 'time=now level=ERROR msg="Failed to start gRPC listener"'), never, 10_000);
    const message = await failure.then(() => '', (err: Error) => err.message);
    expect(message).toMatch(/^crasher exited during start-up:\nt.*level=ERROR msg="Failed to start gRPC listener"\n…\n/);
    expect(message).toContain('frame 39');
    expect(message).not.toContain('the earlier start');
    expect(message).not.toContain('booting'); // before the cause, beyond the tail
  });
});

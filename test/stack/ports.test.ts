// freePort() hands out a port that the OS will not give to the next bind(0) (Temporal's internal
// services and the tests pick theirs that way), yet that our own processes can still bind.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assertPortFree, freePort } from '../../bin/stack/ports.ts';

const TIME_WAIT = '06';

/** Local ports of the IPv4 TCP sockets in TIME_WAIT, from the kernel's table. */
function timeWaitPorts(): Set<number> {
  const rows = fs.readFileSync('/proc/net/tcp', 'utf8').trim().split('\n').slice(1);
  return new Set(rows.map((r) => r.trim().split(/\s+/)).filter((f) => f[3] === TIME_WAIT).map((f) => parseInt(f[1]!.split(':')[1]!, 16)));
}

describe('freePort', () => {
  it('leaves the port in TIME_WAIT, so bind(0) skips it, and it can still be listened on', async () => {
    const port = await freePort();
    expect(timeWaitPorts()).toContain(port);
    await assertPortFree(port, 'the test'); // listens on it, as the port's user will
  });
});

// The Temporal dev server as the stack runs it: Berth's search attributes are registered, and a
// restart on the same SQLite file keeps running workflows. Uses its own server, so restarting it
// does not disturb the other test files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bin/stack/ports.ts';
import { startTemporal, type TemporalHandle } from '../../bin/stack/temporal.ts';
import { SEARCH_ATTRIBUTE_FLAGS } from '../../workflows/messages.ts';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-temporal-test-'));
let server: TemporalHandle | undefined;
afterAll(async () => {
  await server?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('Temporal dev server', () => {
  it('registers the search attributes and keeps workflows across a restart on the same SQLite file', async () => {
    const opts = { dataDir, port: await freePort(), uiPort: await freePort() };
    server = await startTemporal(opts);
    let connection = await Connection.connect({ address: server.address });
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    for (const flag of SEARCH_ATTRIBUTE_FLAGS) expect(Object.keys(customAttributes)).toContain(flag.split('=')[0]);
    const ui = await fetch(server.uiUrl);
    expect(ui.status).toBe(200);

    // No worker polls this queue: the workflow simply stays running, which is all this needs.
    const client = new Client({ connection });
    const workflowId = `restart-${Date.now()}`;
    await client.workflow.start('sessionWorkflow', { taskQueue: 'no-worker-here', workflowId, args: [] });
    await connection.close();

    await server.stop();
    await expect(Connection.connect({ address: server.address, connectTimeout: 500 })).rejects.toThrow();
    server = await startTemporal(opts);

    connection = await Connection.connect({ address: server.address });
    const described = await new Client({ connection }).workflow.getHandle(workflowId).describe();
    expect(described.status.name).toBe('RUNNING');
    expect(described.taskQueue).toBe('no-worker-here');
    await connection.close();
  });
});

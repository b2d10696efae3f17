// The workers' sweep for sessions whose workflow closed without ending them, with two task queues
// whose workers (here: a sweep and a sandbox provider each) keep their sandboxes in data dirs of
// their own, as workers on two hosts do. Real Postgres, Temporal server and sandboxes.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { closedSessionSweep } from '../../activities/sandbox/closed-sessions.ts';
import { localSandboxProvider, sandboxPaths, stopAllLocalSandboxes, type LocalSandboxProvider } from '../../activities/sandbox/local.ts';
import { db } from '../../lib/db.ts';
import { newId } from '../../lib/ids.ts';
import { testEnv, type TestEnv } from '../support/processes.ts';
import { defaultLimits } from './helpers.ts';

interface Queue {
  env: TestEnv;
  sandboxes: LocalSandboxProvider;
  sweep: ReturnType<typeof closedSessionSweep>;
}

let connection: Connection;
let a: Queue;
let b: Queue;
let ids: { team: string; agent: string };

beforeAll(async () => {
  connection = await Connection.connect({ address: inject('temporalAddress') });
  const temporal = new Client({ connection, namespace: inject('temporalNamespace') });
  const queue = (name: string): Queue => {
    const env = testEnv(name);
    const sandboxes = localSandboxProvider({ dataDir: env.dataDir, limits: defaultLimits });
    return { env, sandboxes, sweep: closedSessionSweep(temporal, sandboxes, env.taskQueue) };
  };
  a = queue('sweep-a');
  b = queue('sweep-b');
  Object.assign(process.env, a.env.env, { LOG_LEVEL: 'warn' }); // db() reads the process environment
  ids = { team: `team_sweep${Date.now().toString(36)}`, agent: newId('agt') };
  await db().team.create({ data: { id: ids.team, name: 'closed-session sweep test' } });
  await db().agent.create({ data: { id: ids.agent, teamId: ids.team, name: 'sweeper', model: 'm', tools: [] } });
});

afterAll(async () => {
  for (const q of [a, b]) {
    q?.sandboxes.close();
    if (q) await stopAllLocalSandboxes(q.env.dataDir);
  }
  await connection?.close();
});

describe('the closed-session sweep', () => {
  it("removes a deleted session's sandbox once Temporal no longer keeps its workflow: its own queue's workers do, another queue's leave it", async () => {
    // A session of queue A, deleted (the API marked it ended) while its sandbox was hibernated, whose
    // workflow Temporal does not know (never started here; after retention it is the same answer).
    const sid = newId('ses');
    await a.sandboxes.ensure({ sessionId: sid, env: {} });
    writeFileSync(path.join(sandboxPaths(a.env.dataDir, sid).workspace, 'notes.txt'), 'kept until deleted');
    await a.sandboxes.hibernate(sid);
    await db().session.create({
      data: { id: sid, teamId: ids.team, agentId: ids.agent, taskQueue: a.env.taskQueue, status: 'ended', sandboxState: 'hibernated' },
    });
    const row = () => db().session.findUniqueOrThrow({ where: { id: sid }, select: { sandboxState: true } });

    // Queue B's worker holds nothing of it: marking it removed would leave the workspace behind for good.
    expect((await b.sweep()).settled).not.toContain(sid);
    expect(await row()).toEqual({ sandboxState: 'hibernated' });
    expect(existsSync(sandboxPaths(a.env.dataDir, sid).workspace)).toBe(true);

    const swept = await a.sweep();
    expect(swept.settled).toContain(sid);
    expect(swept.failed).toEqual([]);
    expect(await row()).toEqual({ sandboxState: 'removed' });
    expect(existsSync(sandboxPaths(a.env.dataDir, sid).sessionDir)).toBe(false);
    const events = await db().sessionEvent.findMany({ where: { sessionId: sid }, select: { type: true, data: true } });
    expect(events).toEqual([{ type: 'session.status', data: { status: 'ended', sandbox: 'removed' } }]);

    // Settled once: the next sweeps of either queue find nothing more to do for it.
    expect((await a.sweep()).settled).not.toContain(sid);
    expect((await b.sweep()).settled).not.toContain(sid);
  });
});

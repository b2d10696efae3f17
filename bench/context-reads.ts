// Run by bench/context.ts in a process of its own, whose DATABASE_URL is that benchmark's Postgres:
// seeds a short and a long session (and other sessions' rows around them), then times the read a
// model step makes before it calls the model, once per new turn. Prints JSON.
import { buildContext } from '../activities/model/context.ts';
import { closeDb, db } from '../lib/db.ts';
import type { AgentSpec } from '../lib/types.ts';
import { summary } from './stats.ts';

const LENGTHS = [20, 10_000];
const OTHER_SESSIONS_ROWS = 50_000;
const TURNS = 100;

const agent: AgentSpec = { id: 'agt_bench', teamId: 'team_default', name: 'bench', model: 'bench', systemPrompt: '', tools: [], env: {} };
await db().agent.create({ data: { id: agent.id, teamId: agent.teamId, name: agent.name, model: agent.model, tools: [] } });

/** Messages in pairs (user, assistant), one pair per turn, from `turn` on. */
async function addTurns(sessionId: string, firstTurn: number, turns: number): Promise<void> {
  const rows = Array.from({ length: turns * 2 }, (_, i) => {
    const turn = firstTurn + Math.floor(i / 2);
    const seq = 2 * turn - 1 + (i % 2);
    return { id: `msg_${sessionId}_${seq}`, sessionId, seq, turn, role: i % 2 ? 'assistant' : 'user', content: 'x'.repeat(200) };
  });
  for (let i = 0; i < rows.length; i += 5_000) await db().message.createMany({ data: rows.slice(i, i + 5_000) });
}

async function session(id: string, messages: number): Promise<void> {
  await db().session.create({ data: { id, teamId: agent.teamId, agentId: agent.id } });
  await addTurns(id, 1, messages / 2);
}

await session('ses_others', OTHER_SESSIONS_ROWS);
const result: Record<string, unknown> = {};
for (const length of LENGTHS) {
  const id = `ses_${length}`;
  await session(id, length);
  await buildContext(id, agent); // a worker's first step in a session reads it all; later ones only what is new
  const times: number[] = [];
  for (let t = 0; t < TURNS; t++) {
    await addTurns(id, length / 2 + t + 1, 1);
    const start = performance.now();
    await buildContext(id, agent);
    times.push(performance.now() - start);
  }
  result[`context_read_ms_session_of_${length}_messages`] = summary(times);
}
await closeDb();
console.log(JSON.stringify(result));

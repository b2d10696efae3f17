// For tests that restart a process around a session in the middle of a turn: a session whose model
// runs `sleep 3` with the bash tool, caught while the command runs, and the check that it carries on.
import { expect } from 'vitest';
import type { Berth } from './berth.ts';

/** A new session in the middle of its first turn (the tool call has started); returns its id. */
export async function sessionInSlowTurn(berth: Berth, label: string): Promise<string> {
  const model = berth.model(label);
  await berth.script(model, {
    rules: [
      { match: 'slow', steps: [{ tool_calls: [{ name: 'bash', arguments: { command: 'sleep 3; echo slept' } }] }, { text: 'done sleeping' }] },
      { match: 'after', steps: [{ text: 'still here' }] },
    ],
  });
  const sid = await berth.newSession(model);
  await berth.sendUntilToolStarted(sid, 'be slow');
  return sid;
}

/** The slow turn completes, the next message is answered, and the transcript holds both turns once. */
export async function expectSessionCarriesOn(berth: Berth, sid: string): Promise<void> {
  const events = await berth.api.events(sid, { until: (e) => e.type.startsWith('turn.'), timeoutMs: 90_000 });
  expect(events.at(-1)?.type).toBe('turn.completed');
  const next = await berth.api.post(`/v1/sessions/${sid}/messages?wait=true`, { content: 'after the restart' });
  expect(next.body).toMatchObject({ outcome: 'completed', text: 'still here' });
  const t = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
  expect(t.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
  expect(t[2].content).toBe('slept\n');
}

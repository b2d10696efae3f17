// Session lifecycle activities: status changes, hibernation, the end of a turn and of a session.
import { db } from '../lib/db.ts';
import { appendEvents, turnEndKey } from '../lib/events.ts';
import type { SandboxState, SessionStatus, TurnOutcome } from '../lib/types.ts';
import type { SandboxProvider } from './sandbox/provider.ts';
import { activityKey } from './transcript.ts';

export function makeSessionActivities(sandboxes: SandboxProvider) {
  async function setSessionStatus(input: { sessionId: string; status: SessionStatus; sandbox: SandboxState }): Promise<void> {
    const { sessionId, status, sandbox } = input;
    await db().session.update({ where: { id: sessionId }, data: { status, sandboxState: sandbox } });
    await appendEvents(sessionId, [{ key: activityKey(), type: 'session.status', data: { status, sandbox } }]);
  }

  /** Stops the sandbox's processes after the idle timeout; the workspace stays for the next message. */
  async function hibernateSandbox(input: { sessionId: string }): Promise<void> {
    await sandboxes.hibernate(input.sessionId);
  }

  /** Removes the sandbox and its workspace and marks the session ended. */
  async function endSession(input: { sessionId: string; droppedMessages: number }): Promise<void> {
    const { sessionId, droppedMessages } = input;
    await sandboxes.destroy(sessionId);
    await db().session.update({ where: { id: sessionId }, data: { status: 'ended', sandboxState: 'removed', endedAt: new Date() } });
    await appendEvents(sessionId, [
      { key: 'session.ended', type: 'session.status', data: { status: 'ended', sandbox: 'removed', dropped_messages: droppedMessages } },
    ]);
  }

  /** Records how a turn that did not complete ended (a completed turn is recorded by its last model step). */
  async function recordTurnEnd(input: { sessionId: string; turn: number; outcome: Exclude<TurnOutcome, 'completed'>; detail: string }): Promise<void> {
    const { sessionId, turn, outcome, detail } = input;
    await appendEvents(sessionId, [
      outcome === 'aborted'
        ? { key: turnEndKey(turn), type: 'turn.aborted', data: { turn, reason: detail } }
        : { key: turnEndKey(turn), type: 'turn.failed', data: { turn, error: detail } },
    ]);
  }

  return { setSessionStatus, hibernateSandbox, endSession, recordTurnEnd };
}

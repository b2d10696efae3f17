// The session workflow: one per agent session (workflow id = session id). It owns the order of
// things: a queue of user messages, one turn at a time, abort, idle hibernation and the end. All
// I/O is in activities; the transcript lives in Postgres, so the state carried here stays small.
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  currentUpdateInfo,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.ts';
import type { CarriedState, QueuedMessage, SessionInput, SessionStatus, TurnOutcome } from '../lib/types.ts';
import {
  INVALID_MESSAGE,
  MAX_WAITING_BYTES,
  QUEUE_FULL,
  SESSION_CLOSED,
  abortSignal,
  endSessionUpdate,
  sandboxStoppedSignal,
  searchAttributes,
  sendMessageUpdate,
  snapshotQuery,
} from './messages.ts';

export * from './messages.ts';

type Activities = ReturnType<typeof createActivities>;

/** Temporal patch ids (`patched`): each names a change that histories recorded before it replay without. */
const SANDBOX_RUNNING_FROM_TOOL_START = 'sandbox-running-from-tool-start';

const utf8Bytes = (text: string) => new TextEncoder().encode(text).length;

/** How many sendMessage answers a run carries into the next (a few kB of state). */
const REMEMBERED_ANSWERS = 100;

export async function sessionWorkflow(input: SessionInput): Promise<void> {
  const { sessionId, agent, limits } = input;
  const heartbeatTimeout = limits.heartbeatTimeoutS * 1000; // durations in ms
  // Model and tool steps are cancelled by abort; WAIT_CANCELLATION_COMPLETED makes the turn end only
  // once the activity has stopped (the process in the sandbox is dead, the stream is closed).
  const { modelStep } = proxyActivities<Activities>({
    startToCloseTimeout: '10m',
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // About 45 s of retries: long enough for the gateway to restart (LiteLLM boots in 8-15 s here).
    retry: { maximumAttempts: 8, initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: ['ModelRequestRejected'] },
  });
  const { runTool } = proxyActivities<Activities>({
    startToCloseTimeout: (limits.toolTimeoutS + 60) * 1000,
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { maximumAttempts: 5, initialInterval: '1s', backoffCoefficient: 2 },
  });
  // The session's bookkeeping: retried for up to an hour (not 10 attempts, about 3 minutes), so that
  // an outage of Postgres or the sandbox backend fails a turn at most, never the session.
  const { recordTurnEnd, setSessionStatus, hibernateSandbox, endSession } = proxyActivities<Activities>({
    startToCloseTimeout: '1m',
    scheduleToCloseTimeout: '1h',
    retry: { initialInterval: '500ms', maximumInterval: '30s' },
  });

  const state: CarriedState = input.carried ?? { nextSeq: 1, turn: 0, queue: [], sandbox: 'none' };
  let status: SessionStatus = state.sandbox === 'hibernated' ? 'hibernated' : 'active';
  let closing = false;
  let ended = false;
  let runningTurn: number | null = null;
  let turnScope: CancellationScope | undefined;
  let abortReason = 'aborted by request';

  // Temporal answers a repeated update id itself, but only within one run: across continue-as-new
  // the workflow remembers its last answers, so a retried request is still one message.
  const answered = new Map(state.answered ?? []);
  setHandler(
    sendMessageUpdate,
    ({ content }) => {
      const updateId = currentUpdateInfo()?.id;
      const earlier = updateId === undefined ? undefined : answered.get(updateId);
      if (earlier) return earlier;
      const turn = state.turn + state.queue.length + 1; // the turn that will answer it
      const msg: QueuedMessage = { messageId: `msg_${uuid4().replace(/-/g, '')}`, seq: state.nextSeq++, content };
      state.queue.push(msg);
      const result = { messageId: msg.messageId, seq: msg.seq, turn };
      if (updateId !== undefined) {
        answered.set(updateId, result);
        if (answered.size > REMEMBERED_ANSWERS) answered.delete(answered.keys().next().value!);
      }
      return result;
    },
    {
      validator: (arg) => {
        if (closing) throw ApplicationFailure.create({ type: SESSION_CLOSED, message: 'The session has ended', nonRetryable: true });
        if (typeof arg?.content !== 'string' || arg.content.trim() === '') {
          throw ApplicationFailure.create({ type: INVALID_MESSAGE, message: 'content must be a non-empty string', nonRetryable: true });
        }
        const waiting = state.queue.reduce((sum, m) => sum + utf8Bytes(m.content), 0);
        if (waiting + utf8Bytes(arg.content) > MAX_WAITING_BYTES) {
          const kib = (bytes: number) => `${Math.ceil(bytes / 1024)} KiB`;
          const n = state.queue.length;
          const message =
            `${n} message${n === 1 ? ' is' : 's are'} waiting for ${n === 1 ? 'its' : 'their'} turn (${kib(waiting)}); with this one ` +
            `(${kib(utf8Bytes(arg.content))}) that passes the ${kib(MAX_WAITING_BYTES)} a session holds: send it once they are answered`;
          throw ApplicationFailure.create({ type: QUEUE_FULL, message, nonRetryable: true });
        }
      },
    },
  );
  setHandler(abortSignal, ({ reason }) => {
    abortReason = reason ?? 'aborted by request';
    turnScope?.cancel();
  });
  // The sandbox stopped without the workflow (sandboxStoppedSignal); a tool step's result replaces this.
  let sandboxStopped = false;
  setHandler(sandboxStoppedSignal, () => {
    if (state.sandbox === 'running') sandboxStopped = true;
  });
  setHandler(endSessionUpdate, async () => {
    closing = true;
    abortReason = 'session ended';
    turnScope?.cancel();
    await condition(() => ended);
    return { ended: true as const };
  });
  setHandler(snapshotQuery, () => ({
    status,
    sandbox: state.sandbox,
    runningTurn,
    queued: state.queue.length,
    turnsCompleted: state.turn - (runningTurn === null ? 0 : 1),
  }));

  const show = () =>
    setCurrentDetails(
      `**${agent.name}** (${agent.model}) · ${status} · sandbox ${state.sandbox}` +
        (runningTurn === null ? ' · idle' : ` · running turn ${runningTurn}`) +
        (state.queue.length ? ` · ${state.queue.length} queued` : ''),
    );
  const setStatus = async (next: SessionStatus) => {
    if (next === status) return;
    status = next;
    upsertSearchAttributes([{ key: searchAttributes.status, value: next }]);
    await setSessionStatus({ sessionId, status: next, sandbox: state.sandbox });
  };

  async function runTurn(msg: QueuedMessage, turn: number): Promise<void> {
    let outcome: TurnOutcome = 'completed';
    let detail = '';
    turnScope = new CancellationScope();
    try {
      await turnScope.run(async () => {
        for (let step = 1; ; step++) {
          if (step > limits.maxSteps) {
            outcome = 'failed';
            detail = `step budget of ${limits.maxSteps} model steps spent before the model finished`;
            return;
          }
          const result = await modelStep({
            sessionId,
            turn,
            step,
            agent,
            assistantSeq: state.nextSeq++,
            userMessage: step === 1 ? msg : undefined,
            contextFrom: state.contextFrom,
          });
          if (result.contextFrom) state.contextFrom = result.contextFrom;
          if (result.toolCalls.length === 0) return; // the activity has recorded turn.completed
          for (const call of result.toolCalls) {
            // The step starts the sandbox if it is not running: count it running before the step ends,
            // so that the idle timer stops it even if the step is aborted or fails. (Histories
            // recorded before this change replay without it.)
            if (patched(SANDBOX_RUNNING_FROM_TOOL_START)) state.sandbox = 'running';
            const toolResult = await runTool({ sessionId, turn, step, call, seq: state.nextSeq++, agent });
            state.sandbox = toolResult.sandbox;
            sandboxStopped = false;
          }
        }
      });
    } catch (err) {
      if (isCancellation(err)) {
        outcome = 'aborted';
        detail = abortReason;
      } else {
        outcome = 'failed';
        detail = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      }
    } finally {
      turnScope = undefined;
    }
    if (outcome !== 'completed') {
      await CancellationScope.nonCancellable(() => recordTurnEnd({ sessionId, turn, outcome: outcome as 'failed' | 'aborted', detail }));
    }
  }

  show();
  while (!closing) {
    const wake = () => state.queue.length > 0 || closing;
    // Only a running sandbox has anything to hibernate; otherwise wait without a timer.
    const woken =
      state.sandbox === 'running' ? await condition(() => wake() || sandboxStopped, limits.idleTimeoutS * 1000) : (await condition(wake), true);
    // Idle for the timeout, or woken by sandboxStoppedSignal with no message waiting: hibernate either way.
    if (!woken || !wake()) {
      await hibernateSandbox({ sessionId });
      state.sandbox = 'hibernated';
      sandboxStopped = false;
      await setStatus('hibernated');
      show();
      continue;
    }
    if (closing) break;
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= limits.continueAsNewEvents) {
      await condition(allHandlersFinished);
      if (!closing) await continueAsNew<typeof sessionWorkflow>({ ...input, carried: { ...state, answered: [...answered] } });
    }
    const msg = state.queue.shift();
    if (!msg) continue;
    if (status === 'hibernated') await setStatus('active');
    runningTurn = ++state.turn;
    show();
    await runTurn(msg, runningTurn);
    runningTurn = null;
    show();
  }

  await CancellationScope.nonCancellable(async () => {
    await endSession({ sessionId, droppedMessages: state.queue.length });
  });
  state.sandbox = 'removed';
  status = 'ended';
  upsertSearchAttributes([{ key: searchAttributes.status, value: 'ended' }]);
  ended = true;
  show();
  await condition(allHandlersFinished);
}

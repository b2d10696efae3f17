// The model step: one streamed completion from the gateway. Text goes to the event log as it
// arrives (never through Temporal history); the finished reply goes to the transcript.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { appendEvents, turnEndKey } from '../../lib/events.ts';
import type { Config } from '../../lib/config.ts';
import type { AgentSpec, ContextStart, ModelStepResult, NewSessionEvent, QueuedMessage, ToolCall } from '../../lib/types.ts';
import { toolDefinitions } from '../tools/definitions.ts';
import { CoalescingWriter, findEarlierResult, meanwhile, recordMessage, withHeartbeat } from '../transcript.ts';
import { buildContext, shorterContext, WHOLE_TRANSCRIPT } from './context.ts';
import { ContextWindowExceeded, streamChat, type ChatMessage, type StreamedReply } from './gateway.ts';

export interface ModelStepInput {
  sessionId: string;
  turn: number;
  step: number;
  agent: AgentSpec;
  /** The seq the assistant's reply is recorded under. */
  assistantSeq: number;
  /** On a turn's first step: the user message that starts it, recorded first. */
  userMessage?: QueuedMessage;
  /** Where the context starts (an earlier step found what comes before too long for the model). */
  contextFrom?: ContextStart;
}

export function makeModelStep(config: Config) {
  const gateway = { url: config.LITELLM_GATEWAY_URL ?? '', apiKey: config.LITELLM_API_KEY };

  return async function modelStep(input: ModelStepInput): Promise<ModelStepResult> {
    const { sessionId, turn, step, agent, assistantSeq, userMessage } = input;
    const ctx = Context.current();
    const attempt = ctx.info.attempt;
    // The user message (the turn's first) is recorded while the context is read and the model
    // answers: buildContext adds it when the read came first, and the first delta waits for it. The
    // read goes out first: the model waits for it, while nothing waits for the write until the
    // first delta. On a first attempt findEarlierResult asks nothing.
    let from = input.contextFrom ?? WHOLE_TRANSCRIPT;
    const reads = Promise.all([buildContext(sessionId, agent, userMessage, from), findEarlierResult(sessionId, assistantSeq)]);
    const userRecorded = meanwhile(
      userMessage
        ? recordMessage({ sessionId, seq: userMessage.seq, turn, role: 'user', content: userMessage.content, id: userMessage.messageId })
        : Promise.resolve(),
    );
    const [firstContext, done] = await reads;
    let messages = firstContext;
    if (done) {
      const reply: ModelStepResult = {
        content: done.content,
        toolCalls: (done.toolCalls as ToolCall[] | null) ?? [],
        usage: { promptTokens: done.promptTokens, completionTokens: done.completionTokens },
      };
      await userRecorded;
      // Recording it again writes nothing new but the events the dead attempt did not get to write.
      await recordMessage(
        { sessionId, seq: assistantSeq, turn, role: 'assistant', content: reply.content, toolCalls: reply.toolCalls, usage: reply.usage },
        { after: turnEnd(turn, reply) },
      );
      return reply;
    }

    if (attempt > 1) {
      await appendEvents(sessionId, [{ key: `t${turn}.s${step}.a${attempt}.retry`, type: 'step.retry', data: { turn, step, attempt } }]);
    }
    const deltas = new CoalescingWriter(
      sessionId,
      `t${turn}.s${step}.a${attempt}.d`,
      (text) => ({ type: 'message.delta', data: { turn, step, attempt, text } }),
      { after: userRecorded },
    );
    let partial = '';
    const tools = toolDefinitions(agent.tools);
    const ask = (context: ChatMessage[]) =>
      withHeartbeat(() =>
        streamChat(
          gateway,
          { model: agent.model, messages: context, ...(tools.length ? { tools } : {}) },
          (text) => {
            partial += text;
            deltas.push(text);
          },
          ctx.cancellationSignal,
        ),
      );
    try {
      let reply: StreamedReply | undefined;
      while (!reply) {
        try {
          reply = await ask(messages);
        } catch (err) {
          if (!(err instanceof ContextWindowExceeded)) throw err;
          // Leave out older turns, then older steps of this one (a step with its tool results), then cut
          // its tool results shorter, and ask again; the workflow starts the session's next steps there too.
          const shorter = await shorterContext(sessionId, from, turn);
          if (!shorter) {
            const message = `the model's context window cannot hold even this turn's message and latest step: ${err.message}`;
            throw ApplicationFailure.create({ type: 'ContextWindowExceeded', message, nonRetryable: true });
          }
          from = shorter;
          messages = await buildContext(sessionId, agent, userMessage, from);
        }
      }
      await recordMessage(
        { sessionId, seq: assistantSeq, turn, role: 'assistant', content: reply.content, toolCalls: reply.toolCalls, usage: reply.usage },
        { before: await deltas.drain(), after: turnEnd(turn, reply) },
      );
      return from === WHOLE_TRANSCRIPT ? reply : { ...reply, contextFrom: from };
    } catch (err) {
      await deltas.close();
      if (ctx.cancellationSignal.aborted) {
        // Keep what the user already saw streaming in, so the transcript matches the screen.
        if (partial) await recordMessage({ sessionId, seq: assistantSeq, turn, role: 'assistant', content: partial });
        throw new CancelledFailure('model step aborted');
      }
      throw err;
    }
  };
}

// A reply without tool calls ends the turn; saying so here saves the workflow an activity per turn.
function turnEnd(turn: number, reply: ModelStepResult): NewSessionEvent[] {
  if (reply.toolCalls.length > 0) return [];
  const usage = { prompt_tokens: reply.usage.promptTokens, completion_tokens: reply.usage.completionTokens };
  return [{ key: turnEndKey(turn), type: 'turn.completed', data: { turn, text: reply.content, usage } }];
}

// The scripted model tests drive: a test registers, per model name, what the model answers. The
// answer is a pure function of the request (a Temporal activity retried after a crash re-sends the
// same request and must get the same answer): the first rule whose `match` occurs in the last user
// message picks a list of steps, and the number of assistant messages since that user message
// picks the step.
import { z } from 'zod';
import { contentText, turnPosition, type ChatRequest, type Reply } from './model-types.ts';

const toolCall = z.strictObject({
  id: z.string().optional(),
  name: z.string().min(1),
  arguments: z.union([z.record(z.string(), z.unknown()), z.string()]),
});
export const stepSchema = z.strictObject({
  text: z.string().optional(),
  tool_calls: z.array(toolCall).optional(),
  chunks: z.array(z.string()).optional(),
  chunk_delay_ms: z.number().int().min(0).max(600_000).optional(),
  error: z.strictObject({ status: z.number().int().min(400).max(599), message: z.string() }).optional(),
});
const ruleSchema = z.strictObject({
  /** A substring of the last user message; a rule without one matches every message. */
  match: z.string().optional(),
  steps: z.array(stepSchema).min(1),
});
/**
 * A bare list of steps, or rules chosen by the last user message; with `context_window_chars`, a
 * request whose messages hold more text than that is refused as a real model refuses one too long.
 */
export const scriptSchema = z.union([
  z.array(stepSchema).min(1).transform((steps): { rules: z.output<typeof ruleSchema>[]; context_window_chars?: number } => ({ rules: [{ steps }] })),
  z.strictObject({ rules: z.array(ruleSchema).min(1), context_window_chars: z.number().int().min(1).optional() }),
]);

export type ScriptStep = z.input<typeof stepSchema>;
export type ScriptRule = z.input<typeof ruleSchema>;
export type Script = z.input<typeof scriptSchema>;
type ParsedScript = z.output<typeof scriptSchema>;

/** Models reached through the gateway's `scripted/*` route arrive here with or without the prefix. */
export const SCRIPTED_PREFIX = 'scripted/';
export const scriptKey = (model: string) => (model.startsWith(SCRIPTED_PREFIX) ? model.slice(SCRIPTED_PREFIX.length) : model);

export class ScriptStore {
  private scripts = new Map<string, ParsedScript>();

  set(model: string, script: unknown): void {
    this.scripts.set(scriptKey(model), scriptSchema.parse(script));
  }
  delete(model: string): void {
    this.scripts.delete(scriptKey(model));
  }
  has(model: string): boolean {
    return this.scripts.has(scriptKey(model));
  }
  models(): string[] {
    return [...this.scripts.keys()];
  }

  respond(request: ChatRequest): Reply {
    const script = this.scripts.get(scriptKey(request.model));
    if (!script) return { error: { status: 404, message: `no script registered for model ${request.model}` } };
    const window = script.context_window_chars;
    const chars = request.messages.reduce((n, m) => n + contentText(m.content).length + JSON.stringify(m.tool_calls ?? []).length, 0);
    if (window !== undefined && chars > window) {
      // OpenAI's words, which LiteLLM turns into its ContextWindowExceededError.
      const message = `This model's maximum context length is ${window} tokens. However, your messages resulted in ${chars} tokens. Please reduce the length of the messages.`;
      return { error: { status: 400, message } };
    }
    const { lastUser, assistantSteps } = turnPosition(request.messages);
    const rule = script.rules.find((r) => r.match === undefined || lastUser.includes(r.match));
    if (!rule) return { error: { status: 400, message: `no rule of ${request.model}'s script matches the last user message` } };
    const step = rule.steps[assistantSteps];
    // Past the end: a plain answer without tool calls, so a runaway loop ends instead of repeating.
    return step ?? { text: `(scripted model ${request.model}: no step ${assistantSteps + 1})` };
  }
}

// The tool step: runs one of the model's tool calls in the session's sandbox through sandboxd.
// Tool problems (bad arguments, a missing file, a failing command) are results the model reads,
// not activity failures; only the platform's own trouble (no sandbox can be started) is retried.
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type { Config } from '../../lib/config.ts';
import { db } from '../../lib/db.ts';
import { appendEvents } from '../../lib/events.ts';
import type { AgentSpec, SandboxState, ToolCall, ToolName, ToolResult } from '../../lib/types.ts';
import { TOOL_NAMES } from '../../lib/types.ts';
import { SandboxGoneError, SandboxRequestError, type SandboxProvider, type SandboxdClient } from '../sandbox/provider.ts';
import { CoalescingWriter, findEarlierResult, meanwhile, recordMessage, withHeartbeat } from '../transcript.ts';
import { toolArgs } from './definitions.ts';
import { BoundedOutput, truncate } from './output.ts';

export interface RunToolInput {
  sessionId: string;
  turn: number;
  step: number;
  call: ToolCall;
  /** The seq the tool's result is recorded under; also names the exec in sandboxd. */
  seq: number;
  agent: AgentSpec;
}

export interface RunToolResult extends ToolResult {
  sandbox: SandboxState;
}

class ToolError extends Error {}

/** The call a tool runs for, and its tool.started write (what its output events follow). */
interface CallAt {
  sessionId: string;
  turn: number;
  seq: number;
  callId: string;
  announced: Promise<unknown>;
}

export function makeRunTool(config: Config, sandboxes: SandboxProvider) {
  const limit = config.BERTH_TOOL_OUTPUT_LIMIT;

  return async function runTool(input: RunToolInput): Promise<RunToolResult> {
    const { sessionId, turn, step, call, seq, agent } = input;
    const done = await findEarlierResult(sessionId, seq);
    if (done) return { output: done.content, isError: false, sandbox: 'running' };

    // tool.started is written while the call gets going; every later event of the call waits for it.
    const announced = meanwhile(appendEvents(sessionId, [
      { key: `tool.${seq}.started`, type: 'tool.started', data: { turn, step, call_id: call.id, name: call.name, arguments: call.arguments } },
    ]));
    let result: ToolResult & { exitCode?: number | null };
    try {
      const args = parseArgs(call, agent.tools);
      const client = await ensureSandbox(sessionId, seq, agent, announced);
      result = await withHeartbeat(() => dispatch(client, call.name as ToolName, args, { sessionId, turn, seq, callId: call.id, announced }));
    } catch (err) {
      if (err instanceof ToolError || err instanceof SandboxRequestError) result = { output: err.message, isError: true };
      else throw err;
    }
    await announced;
    await sandboxes.afterToolCall?.(sessionId);
    await recordMessage({ sessionId, seq, turn, role: 'tool', content: result.output, toolCallId: call.id, toolName: call.name }, {
      after: [
        {
          key: `tool.${seq}.finished`,
          type: 'tool.finished',
          data: { turn, call_id: call.id, name: call.name, exit_code: result.exitCode ?? null, is_error: result.isError },
        },
      ],
    });
    return { output: result.output, isError: result.isError, sandbox: 'running' };
  };

  async function ensureSandbox(sessionId: string, seq: number, agent: AgentSpec, announced: Promise<unknown>): Promise<SandboxdClient> {
    const { client, started } = await sandboxes.ensure({ sessionId, env: { ...config.containerEnv, ...agent.env } });
    if (started !== 'no') {
      await Promise.all([announced, db().session.update({ where: { id: sessionId }, data: { sandboxState: 'running' } })]);
      await appendEvents(sessionId, [
        { key: `sandbox.${seq}.${started}`, type: 'session.status', data: { status: 'active', sandbox: 'running', started } },
      ]);
    }
    return client;
  }

  async function dispatch(
    client: SandboxdClient,
    name: ToolName,
    args: Record<string, unknown>,
    at: CallAt,
  ): Promise<ToolResult & { exitCode?: number | null }> {
    switch (name) {
      case 'bash':
        return runBash(client, args as { command: string; timeout_s?: number }, at);
      case 'read_file':
        return { output: truncate((await client.readFile(args.path as string)).toString('utf8'), limit), isError: false };
      case 'write_file': {
        const content = args.content as string;
        await client.writeFile(args.path as string, content);
        return { output: `Wrote ${Buffer.byteLength(content)} bytes to ${String(args.path)}`, isError: false };
      }
      case 'edit_file':
        return editFile(client, args as { path: string; old_string: string; new_string: string });
      case 'list_files': {
        const entries = await client.listFiles((args.path as string | undefined) ?? '.');
        const lines = entries.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name)).sort();
        return { output: truncate(lines.join('\n') || '(empty directory)', limit), isError: false };
      }
    }
  }

  async function runBash(
    client: SandboxdClient,
    args: { command: string; timeout_s?: number },
    at: CallAt,
  ): Promise<ToolResult & { exitCode: number | null }> {
    const ctx = Context.current();
    const execId = `x${at.seq}`;
    const timeoutS = Math.min(args.timeout_s ?? config.BERTH_TOOL_TIMEOUT_S, config.BERTH_TOOL_TIMEOUT_S);
    const output = new BoundedOutput(limit);
    const live = new CoalescingWriter(at.sessionId, `tool.${at.seq}.a${ctx.info.attempt}.o`, (data) => ({
      type: 'tool.output',
      data: { turn: at.turn, call_id: at.callId, data },
    }), { intervalMs: 100, after: at.announced });
    let streamed = 0;
    // An abort kills the command. A worker shutting down (a deploy) cancels its activities too, once its
    // grace time is over: then the command runs on, and the next attempt, on another worker, attaches
    // to it by its exec id, as after a crash.
    const onAbort = () => {
      if (!ctx.cancellationDetails?.workerShutdown) void client.kill(execId).catch(() => undefined);
    };
    ctx.cancellationSignal.addEventListener('abort', onAbort);
    try {
      const res = await client.exec({ id: execId, command: args.command, timeoutMs: timeoutS * 1000 }, (chunk) => {
        output.append(chunk.data);
        if (streamed < limit) live.push(chunk.data.slice(0, limit - streamed));
        streamed += chunk.data.length;
      }, ctx.cancellationSignal);
      output.addDropped(res.droppedBytes);
      await live.close();
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('tool call aborted');
      let text = output.toString();
      if (res.timedOut) text += `\n[timed out after ${timeoutS}s; the command and its children were killed]`;
      else if (res.killed) text += '\n[killed]';
      else if (res.exitCode !== 0) text += `\n[exit code: ${res.exitCode ?? `signal ${res.signal}`}]`;
      return { output: text, isError: res.timedOut || res.exitCode !== 0, exitCode: res.exitCode };
    } catch (err) {
      await live.close();
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('tool call aborted');
      if (err instanceof SandboxGoneError) {
        output.append('\n[the sandbox stopped while this command ran; it is restarted with the workspace intact on the next call]');
        return { output: output.toString(), isError: true, exitCode: null };
      }
      throw err;
    } finally {
      ctx.cancellationSignal.removeEventListener('abort', onAbort);
    }
  }

  async function editFile(client: SandboxdClient, args: { path: string; old_string: string; new_string: string }): Promise<ToolResult> {
    const text = (await client.readFile(args.path)).toString('utf8');
    const count = text.split(args.old_string).length - 1;
    if (count !== 1) throw new ToolError(`old_string occurs ${count} times in ${args.path}; it must occur exactly once`);
    await client.writeFile(args.path, text.replace(args.old_string, () => args.new_string));
    return { output: `Edited ${args.path}`, isError: false };
  }
}

function parseArgs(call: ToolCall, enabled: readonly ToolName[]): Record<string, unknown> {
  const name = call.name as ToolName;
  if (!TOOL_NAMES.includes(name)) throw new ToolError(`unknown tool "${call.name}"; available: ${enabled.join(', ')}`);
  if (!enabled.includes(name)) throw new ToolError(`tool "${call.name}" is not enabled for this agent`);
  let raw: unknown;
  try {
    raw = JSON.parse(call.arguments || '{}');
  } catch {
    throw new ToolError(`arguments for ${call.name} are not valid JSON`);
  }
  const parsed = toolArgs[name].safeParse(raw);
  if (!parsed.success) {
    throw new ToolError(`invalid arguments for ${call.name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data as Record<string, unknown>;
}

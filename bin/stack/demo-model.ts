// berth-demo: a DEMO model, not an AI. Fixed rules that exercise Berth's builtin tools so a fresh
// install with no API key shows a working agent. Pure function of the request.
import { contentText, turnPosition, type ChatRequest, type Reply, type ReplyToolCall } from './model-types.ts';

export const DEMO_MODEL = 'berth-demo';

const HELP = `Hi! I am berth-demo, the demo model built into Berth. I am not a real AI: I follow a few fixed rules so you can try the platform without an API key. Try:
- \`$ uname -a\` runs a command with the bash tool
- \`write notes.txt: hello\` writes a file
- \`read notes.txt\` reads it back
- \`edit notes.txt: hello => hi there\` edits it
- \`ls\` or \`ls src\` lists files
For a real model, set OPENAI_API_KEY or ANTHROPIC_API_KEY before \`npm start\` and pick e.g. openai/gpt-4o-mini as the agent's model.`;

function toolCallFor(message: string): ReplyToolCall | undefined {
  const m = message.trim();
  let g: RegExpMatchArray | null;
  if (m.startsWith('$ ')) return { name: 'bash', arguments: { command: m.slice(2) } };
  if ((g = m.match(/^write\s+(\S+?):\s?([\s\S]*)$/))) return { name: 'write_file', arguments: { path: g[1], content: g[2] } };
  if ((g = m.match(/^read\s+(\S+)$/))) return { name: 'read_file', arguments: { path: g[1] } };
  if ((g = m.match(/^edit\s+(\S+?):\s?([\s\S]+?) => ([\s\S]*)$/))) {
    return { name: 'edit_file', arguments: { path: g[1], old_string: g[2], new_string: g[3] } };
  }
  if ((g = m.match(/^ls(?:\s+(\S+))?$/))) return { name: 'list_files', arguments: g[1] ? { path: g[1] } : {} };
  return undefined;
}

export function demoRespond(request: ChatRequest): Reply {
  const { lastUser, assistantSteps, last } = turnPosition(request.messages);
  if (last?.role === 'tool') {
    const output = contentText(last.content);
    const shown = output.length > 2000 ? `${output.slice(0, 2000)}\n… (${output.length - 2000} more characters)` : output;
    return { text: `(berth-demo) The tool finished. Here is what it returned:\n\n\`\`\`\n${shown}\n\`\`\`` };
  }
  const call = assistantSteps === 0 ? toolCallFor(lastUser) : undefined;
  if (!call) return { text: HELP };
  const offered = request.tools?.map((t) => t.function.name);
  if (offered && !offered.includes(call.name)) {
    return { text: `(berth-demo) I would use the ${call.name} tool for that, but this agent has it turned off.` };
  }
  return { text: `(berth-demo) Calling ${call.name}.`, tool_calls: [call] };
}

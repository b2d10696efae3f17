// The builtin harness's tools, exactly as the model sees them (OpenAI tools format), and the zod
// schemas their arguments are checked against before anything runs.
import { z } from 'zod';
import type { ToolName } from '../../lib/types.ts';

const relPath = z.string().min(1).describe('Path relative to the workspace');

export const toolArgs = {
  bash: z.strictObject({
    command: z.string().min(1).describe('The bash command to run in the workspace'),
    timeout_s: z.number().positive().optional().describe('Seconds before the command and its children are killed'),
  }),
  read_file: z.strictObject({ path: relPath }),
  write_file: z.strictObject({ path: relPath, content: z.string() }),
  edit_file: z.strictObject({
    path: relPath,
    old_string: z.string().min(1).describe('Exact text to replace; must occur exactly once'),
    new_string: z.string(),
  }),
  list_files: z.strictObject({ path: relPath.optional().describe('Directory relative to the workspace (default: the workspace)') }),
} satisfies Record<ToolName, z.ZodType>;

const descriptions: Record<ToolName, string> = {
  bash: 'Run a bash command in the workspace. Returns stdout and stderr, then the exit code when it is not 0.',
  read_file: 'Read a text file from the workspace.',
  write_file: 'Create or overwrite a file in the workspace (parent directories are created).',
  edit_file: 'Replace one exact occurrence of old_string with new_string in a workspace file.',
  list_files: 'List a directory of the workspace; directories end with "/".',
};

// Built once: converting the schemas costs about 0.3 ms, and every model step sends them.
const definitions = Object.fromEntries(
  (Object.keys(toolArgs) as ToolName[]).map((name) => [
    name,
    { type: 'function' as const, function: { name, description: descriptions[name], parameters: z.toJSONSchema(toolArgs[name]) } },
  ]),
) as Record<ToolName, { type: 'function'; function: { name: ToolName; description: string; parameters: unknown } }>;

export function toolDefinitions(enabled: readonly ToolName[]) {
  return enabled.map((name) => definitions[name]);
}

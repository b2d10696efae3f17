// The embedded stack's own settings (ports of the processes `npm start` runs, log sizes); Berth's processes
// read theirs through lib/config.ts. Both are documented in .env.example.
import { z } from 'zod';

const port = (def: number) => z.coerce.number().int().min(1).max(65535).default(def);

export const stackSchema = z.object({
  BERTH_POSTGRES_PORT: port(54320),
  BERTH_TEMPORAL_PORT: port(7233),
  BERTH_TEMPORAL_UI_PORT: port(8233),
  BERTH_GATEWAY_PORT: port(4000),
  BERTH_MODEL_SERVER_PORT: port(4010),
  /** A process's log past this many MiB is moved to <name>.log.1 and started afresh. */
  BERTH_LOG_MAX_MB: z.coerce.number().int().min(1).default(100),
});
export type StackConfig = z.infer<typeof stackSchema>;

export function parseStackConfig(env: NodeJS.ProcessEnv): StackConfig {
  const parsed = stackSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`Invalid configuration (see .env.example):\n${lines.join('\n')}`);
  }
  return parsed.data;
}

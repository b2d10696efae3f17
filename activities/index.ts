// Every activity the session workflow can schedule. The worker builds them once with its config
// and sandbox provider; the workflow only sees their types (proxyActivities<...>).
import type { Config } from '../lib/config.ts';
import { makeModelStep } from './model/step.ts';
import type { SandboxProvider } from './sandbox/provider.ts';
import { makeSessionActivities } from './session.ts';
import { makeRunTool } from './tools/run.ts';

export function createActivities(deps: { config: Config; sandboxes: SandboxProvider }) {
  return {
    modelStep: makeModelStep(deps.config),
    runTool: makeRunTool(deps.config, deps.sandboxes),
    ...makeSessionActivities(deps.sandboxes),
  };
}

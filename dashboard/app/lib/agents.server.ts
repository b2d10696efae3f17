// Agent names for pages that show sessions (sessions carry only the agent id).
import type { AppLoadContext } from '@remix-run/node';
import { api } from './api.server.ts';
import type { Agent, Page } from './types.ts';

const MAX_PAGES = 10;

/** Every live agent of the team, newest first (the API pages by 100). */
export async function allAgents(args: { request: Request; context: AppLoadContext }): Promise<Agent[]> {
  const agents: Agent[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page: Page<Agent> = await api(args, `/v1/agents?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    agents.push(...page.data);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return agents;
}

export const agentNames = (agents: Agent[]) => Object.fromEntries(agents.map((a) => [a.id, a.name]));

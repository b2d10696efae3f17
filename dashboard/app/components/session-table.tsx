// A table of sessions: id, agent, status, sandbox, tokens, age. Used by the overview and the list.
import { Link } from '@remix-run/react';
import { count } from '../lib/format.ts';
import type { Session } from '../lib/types.ts';
import { Badge, Mono, Time } from './ui.tsx';

interface Props {
  sessions: Session[];
  agentNames: Record<string, string>;
  caption: string;
  /** Fewer columns, for a narrow card. */
  compact?: boolean;
}

export function SessionTable({ sessions, agentNames, caption, compact = false }: Props) {
  return (
    <div className="table-wrap">
      <table className="table">
        <caption className="sr-only">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Session</th>
            <th scope="col" className="hide-narrow">
              Agent
            </th>
            <th scope="col">Status</th>
            {compact ? null : (
              <>
                <th scope="col" className="hide-narrow">Sandbox</th>
                <th scope="col" className="num hide-narrow">Tokens</th>
              </>
            )}
            <th scope="col" className="hide-narrow">Started</th>
          </tr>
        </thead>
        <tbody>
          {sessions.map((s) => (
            <tr key={s.id}>
              <td>
                <Link to={`/sessions/${s.id}`} className="row-link">
                  <Mono>{s.id}</Mono>
                </Link>
                <div className="muted small show-narrow">{agentNames[s.agent_id] ?? 'deleted agent'}</div>
              </td>
              <td className="hide-narrow">{agentNames[s.agent_id] ?? <span className="muted">deleted agent</span>}</td>
              <td>
                <Badge value={s.status} />
              </td>
              {compact ? null : (
                <>
                  <td className="hide-narrow">
                    <Badge value={s.sandbox_state} />
                  </td>
                  <td className="num hide-narrow">{count(s.usage.prompt_tokens + s.usage.completion_tokens)}</td>
                </>
              )}
              <td className="hide-narrow">
                <Time iso={s.created_at} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// Overview: what runs now (active sessions, live sandboxes), how busy the last hour was, and what
// failed lately.
import type { LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { Link, useLoaderData } from '@remix-run/react';
import { SessionTable } from '../components/session-table.tsx';
import { RouteError } from '../components/route-error.tsx';
import { Empty, Mono, PageHeader, Time } from '../components/ui.tsx';
import { agentNames, allAgents } from '../lib/agents.server.ts';
import { load } from '../lib/api.server.ts';
import { count } from '../lib/format.ts';
import type { Overview, Page, Session } from '../lib/types.ts';

export const meta: MetaFunction = () => [{ title: 'Overview · Berth' }];

export async function loader(args: LoaderFunctionArgs) {
  const [overview, recent, agents] = await Promise.all([
    load<Overview>(args, '/v1/overview'),
    load<Page<Session>>(args, '/v1/sessions?limit=6'),
    allAgents(args),
  ]);
  return { overview, recent: recent.data, agentNames: agentNames(agents), agentCount: agents.length };
}

function Stat({ label, value, hint, to }: { label: string; value: number; hint: string; to?: string }) {
  const body = (
    <>
      <span className="stat-label">{label}</span>
      <span className="stat-value">{count(value)}</span>
      <span className="stat-hint">{hint}</span>
    </>
  );
  return to ? (
    <Link to={to} className="stat card">
      {body}
    </Link>
  ) : (
    <div className="stat card">{body}</div>
  );
}

export default function OverviewPage() {
  const { overview: o, recent, agentNames: names, agentCount } = useLoaderData<typeof loader>();
  return (
    <>
      <PageHeader title="Overview" subtitle="Your agents' sessions right now." />
      <section className="stats" aria-label="Current numbers">
        <Stat label="Active sessions" value={o.active_sessions} hint={`${count(o.hibernated_sessions)} hibernated`} to="/sessions?status=active" />
        <Stat label="Live sandboxes" value={o.live_sandboxes} hint="starting, running or recreating" />
        <Stat label="Turns, last hour" value={o.turns_last_hour} hint={`${count(o.failed_turns_last_hour)} failed`} />
        <Stat label="Agents" value={agentCount} hint="ready to start sessions" to="/agents" />
      </section>

      <div className="two-col">
        <section className="card section" aria-labelledby="recent-title">
          <div className="section-head">
            <h2 id="recent-title">Recent sessions</h2>
            <Link to="/sessions" className="muted-link">
              All sessions →
            </Link>
          </div>
          {recent.length ? (
            <SessionTable sessions={recent} agentNames={names} caption="Recent sessions" compact />
          ) : (
            <Empty title="No sessions yet">
              {agentCount ? <Link to="/agents">Start one from an agent.</Link> : <Link to="/agents/new">Create an agent first.</Link>}
            </Empty>
          )}
        </section>

        <section className="card section" aria-labelledby="failures-title">
          <div className="section-head">
            <h2 id="failures-title">Recent failures</h2>
          </div>
          {o.recent_failures.length ? (
            <ul className="failures">
              {o.recent_failures.map((f) => (
                <li key={`${f.session_id}-${f.turn ?? 's'}-${f.at}`}>
                  <div className="failure-head">
                    <Link to={`/sessions/${f.session_id}`}>
                      <Mono>{f.session_id}</Mono>
                    </Link>
                    <span className="muted">{f.turn === null ? 'session' : `turn ${f.turn}`}</span>
                    <Time iso={f.at} />
                  </div>
                  <p className="failure-text">{f.error}</p>
                  <p className="muted small">{names[f.agent_id] ?? 'deleted agent'}</p>
                </li>
              ))}
            </ul>
          ) : (
            <Empty title="No failures">Failed turns and sessions show up here.</Empty>
          )}
        </section>
      </div>
    </>
  );
}

export function ErrorBoundary() {
  return <RouteError what="Overview" />;
}

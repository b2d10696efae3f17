// Sessions: filter by status, search by session id or agent (name or id), page with the API's
// cursor, and start a new session from an agent.
import type { ActionFunctionArgs, LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { data } from '@remix-run/node';
import { Form, Link, useActionData, useLoaderData, useNavigation, useSearchParams } from '@remix-run/react';
import { RouteError } from '../components/route-error.tsx';
import { SessionTable } from '../components/session-table.tsx';
import { Empty, PageHeader } from '../components/ui.tsx';
import { agentNames, allAgents } from '../lib/agents.server.ts';
import { api, ApiProblem } from '../lib/api.server.ts';
import { sentence } from '../lib/format.ts';
import { startSession } from '../lib/sessions.server.ts';
import { SESSION_STATUSES, type Page, type Session } from '../lib/types.ts';

export const meta: MetaFunction = () => [{ title: 'Sessions · Berth' }];

const PAGE_SIZE = 20;
const MAX_AGENT_MATCHES = 20;

export async function loader(args: LoaderFunctionArgs) {
  const url = new URL(args.request.url);
  const status = SESSION_STATUSES.find((s) => s === url.searchParams.get('status'));
  const q = (url.searchParams.get('q') ?? '').trim();
  const cursor = url.searchParams.get('cursor');
  try {
    const agents = await allAgents(args);
    const names = agentNames(agents);
    const base = { agents: agents.map((a) => ({ id: a.id, name: a.name })), agentNames: names, status: status ?? null, q };

    // A session id: that one session (whatever the filter says).
    if (/^ses_[A-Za-z0-9_-]+$/.test(q)) {
      const one = await api<Session>(args, `/v1/sessions/${q}`).catch((err: unknown) => {
        if (err instanceof ApiProblem && err.status === 404) return null;
        throw err;
      });
      return { ...base, sessions: one ? [one] : [], nextCursor: null, matchedAgents: null };
    }
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (status) params.set('status', status);
    if (cursor) params.set('cursor', cursor);
    let matchedAgents: string[] | null = null;
    if (q) {
      const needle = q.toLowerCase();
      const matches = agents.filter((a) => a.name.toLowerCase().includes(needle) || a.id.toLowerCase() === needle).slice(0, MAX_AGENT_MATCHES);
      matchedAgents = matches.map((a) => a.name);
      if (!matches.length) return { ...base, sessions: [], nextCursor: null, matchedAgents };
      params.set('agent_id', matches.map((a) => a.id).join(','));
    }
    const page = await api<Page<Session>>(args, `/v1/sessions?${params}`);
    return { ...base, sessions: page.data, nextCursor: page.next_cursor, matchedAgents };
  } catch (err) {
    if (err instanceof ApiProblem) throw data({ message: sentence(err.message) }, { status: err.status });
    throw err;
  }
}

export async function action(args: ActionFunctionArgs) {
  const form = await args.request.formData();
  const agentId = String(form.get('agent_id') ?? '');
  if (!agentId) return { error: 'Pick an agent to start a session with.' };
  try {
    return await startSession(args, agentId);
  } catch (err) {
    if (err instanceof ApiProblem) return { error: sentence(err.message) };
    throw err;
  }
}

export default function Sessions() {
  const { sessions, nextCursor, agents, agentNames: names, status, q, matchedAgents } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const [params] = useSearchParams();
  const navigation = useNavigation();
  const starting = navigation.state === 'submitting' && navigation.formMethod === 'POST';
  const link = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(params);
    next.delete('cursor');
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) next.delete(k);
      else next.set(k, v);
    }
    const s = next.toString();
    return s ? `?${s}` : '.';
  };

  return (
    <>
      <PageHeader
        title="Sessions"
        subtitle="Every conversation with an agent, newest first."
        actions={
          agents.length ? (
            <Form method="post" className="inline-form">
              <label htmlFor="start-agent" className="sr-only">
                Agent to start a session with
              </label>
              <select id="start-agent" name="agent_id" defaultValue={agents[0]?.id}>
                {agents.map((a) => (
                  <option key={a.id} value={a.id}>
                    {a.name}
                  </option>
                ))}
              </select>
              <button type="submit" className="button primary" disabled={starting}>
                {starting ? 'Starting…' : 'Start session'}
              </button>
            </Form>
          ) : null
        }
      />
      {result?.error ? (
        <p className="notice error" role="alert">
          {result.error}
        </p>
      ) : null}

      <div className="toolbar">
        <nav aria-label="Filter by status" className="tabs">
          <Link to={link({ status: null })} className={status === null ? 'tab active' : 'tab'} aria-current={status === null ? 'page' : undefined}>
            All
          </Link>
          {SESSION_STATUSES.map((s) => (
            <Link key={s} to={link({ status: s })} className={status === s ? 'tab active' : 'tab'} aria-current={status === s ? 'page' : undefined}>
              {s[0]!.toUpperCase() + s.slice(1)}
            </Link>
          ))}
        </nav>
        <Form method="get" role="search" className="search">
          {status ? <input type="hidden" name="status" value={status} /> : null}
          <label htmlFor="q" className="sr-only">
            Search sessions by session id or agent
          </label>
          <input id="q" name="q" type="search" defaultValue={q} placeholder="Session id or agent…" key={q} />
          <button type="submit" className="button">
            Search
          </button>
        </Form>
      </div>

      {matchedAgents && matchedAgents.length > 0 ? (
        <p className="muted small">
          Sessions of {matchedAgents.length === 1 ? 'agent' : 'agents'} {matchedAgents.join(', ')}
        </p>
      ) : null}

      <section className="card" aria-label="Sessions">
        {sessions.length ? (
          <SessionTable sessions={sessions} agentNames={names} caption="Sessions" />
        ) : (
          <Empty title={q ? `No sessions match “${q}”` : status ? `No ${status} sessions` : 'No sessions yet'}>
            {q || status ? <Link to=".">Show all sessions</Link> : agents.length ? 'Start one with the button above.' : <Link to="/agents/new">Create an agent first.</Link>}
          </Empty>
        )}
      </section>

      {params.get('cursor') || nextCursor ? (
        <nav className="pager" aria-label="Pages">
          {params.get('cursor') ? (
            <Link to={link({})} className="button ghost">
              ← First page
            </Link>
          ) : (
            <span />
          )}
          {nextCursor ? (
            <Link to={`?${new URLSearchParams({ ...Object.fromEntries(params), cursor: nextCursor })}`} className="button">
              Next page →
            </Link>
          ) : null}
        </nav>
      ) : null}
    </>
  );
}

export function ErrorBoundary() {
  return <RouteError what="Sessions" />;
}

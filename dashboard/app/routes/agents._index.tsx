// Agents: the list, with a way to create one and to start a session from each.
import type { ActionFunctionArgs, LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { data } from '@remix-run/node';
import { Form, Link, useActionData, useLoaderData, useNavigation } from '@remix-run/react';
import { RouteError } from '../components/route-error.tsx';
import { Empty, Mono, PageHeader, Time } from '../components/ui.tsx';
import { allAgents } from '../lib/agents.server.ts';
import { ApiProblem } from '../lib/api.server.ts';
import { sentence } from '../lib/format.ts';
import { startSession } from '../lib/sessions.server.ts';

export const meta: MetaFunction = () => [{ title: 'Agents · Berth' }];

export async function loader(args: LoaderFunctionArgs) {
  try {
    return { agents: await allAgents(args) };
  } catch (err) {
    if (err instanceof ApiProblem) throw data({ message: sentence(err.message) }, { status: err.status });
    throw err;
  }
}

export async function action(args: ActionFunctionArgs) {
  const form = await args.request.formData();
  try {
    return await startSession(args, String(form.get('agent_id')), String(form.get('idempotency_key') || '') || undefined);
  } catch (err) {
    if (err instanceof ApiProblem) return { error: sentence(err.message) };
    throw err;
  }
}

export default function Agents() {
  const { agents } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const navigation = useNavigation();
  const starting = navigation.state !== 'idle' ? navigation.formData?.get('agent_id') : undefined;
  return (
    <>
      <PageHeader
        title="Agents"
        subtitle="What a session runs: model, system prompt, tools and environment."
        actions={
          <Link to="/agents/new" className="button primary">
            New agent
          </Link>
        }
      />
      {result?.error ? (
        <p className="notice error" role="alert">
          {result.error}
        </p>
      ) : null}
      {agents.length === 0 ? (
        <div className="card">
          <Empty title="No agents yet">
            <Link to="/agents/new">Create your first agent</Link> to start sessions.
          </Empty>
        </div>
      ) : (
        <div className="card table-wrap">
          <table className="table">
            <caption className="sr-only">Agents</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Model</th>
                <th scope="col" className="hide-narrow">Tools</th>
                <th scope="col" className="hide-narrow">Updated</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {agents.map((a) => (
                <tr key={a.id}>
                  <td>
                    <Link to={`/agents/${a.id}`} className="row-link strong">
                      {a.name}
                    </Link>
                    <div className="muted small">
                      <Mono>{a.id}</Mono>
                    </div>
                  </td>
                  <td>
                    <Mono>{a.model}</Mono>
                  </td>
                  <td className="hide-narrow">{a.tools.length ? a.tools.join(', ') : <span className="muted">none</span>}</td>
                  <td className="hide-narrow">
                    <Time iso={a.updated_at} />
                  </td>
                  <td className="actions">
                    <Form method="post">
                      <input type="hidden" name="agent_id" value={a.id} />
                      <button type="submit" className="button small" disabled={starting === a.id} aria-label={`Start a session with ${a.name}`}>
                        {starting === a.id ? 'Starting…' : 'Start session'}
                      </button>
                    </Form>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

export function ErrorBoundary() {
  return <RouteError what="Agents" />;
}

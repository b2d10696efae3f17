// One agent: create (/agents/new) or edit, delete, and start a session. The API validates; its 400
// field paths (name, model, tools.0, env.X) are shown beside the fields they name.
import type { ActionFunctionArgs, LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { redirect } from '@remix-run/node';
import { Form, Link, useActionData, useLoaderData, useNavigation, useSearchParams } from '@remix-run/react';
import { useState } from 'react';
import { RouteError } from '../components/route-error.tsx';
import { Mono, PageHeader } from '../components/ui.tsx';
import { api, ApiProblem, load, loadOptional, type FieldError } from '../lib/api.server.ts';
import { sentence } from '../lib/format.ts';
import { startSession } from '../lib/sessions.server.ts';
import { TOOL_NAMES, type Agent, type Credential, type Page } from '../lib/types.ts';

export const meta: MetaFunction<typeof loader> = ({ data: d }) => [{ title: `${d?.agent ? d.agent.name : 'New agent'} · Berth` }];

export async function loader(args: LoaderFunctionArgs) {
  const id = args.params.id!;
  const [agent, models, credentials] = await Promise.all([
    id === 'new' ? Promise.resolve(null) : load<Agent>(args, `/v1/agents/${encodeURIComponent(id)}`),
    api<{ data: { id: string }[] }>(args, '/v1/models').then(
      (m) => m.data.map((x) => x.id),
      () => null, // the gateway is down: the field still takes any name
    ),
    // The vault's credentials; undefined where the API has no vault (the form then hides its fields).
    loadOptional<Page<Credential>>(args, '/v1/credentials?limit=100'),
  ]);
  return { agent, models, credentials: credentials?.data ?? null };
}

const FIELDS = ['name', 'model', 'system_prompt', 'tools', 'env', 'credential_ids', 'egress'] as const;
type Errors = Partial<Record<(typeof FIELDS)[number] | 'form', string>>;

/** API field paths → the field each error belongs beside. */
function errorsByField(details: FieldError[], fallback: string): Errors {
  const out: Errors = {};
  for (const d of details) {
    const [head, ...rest] = d.path.split('.');
    const field = FIELDS.find((f) => f === head) ?? 'form';
    const text = (field === 'env' || field === 'egress') && rest.length ? `${rest.join('.')}: ${d.message}` : sentence(d.message);
    out[field] = out[field] ? `${out[field]} ${text}` : text;
  }
  if (!Object.keys(out).length) out.form = fallback;
  return out;
}

const lines = (v: FormDataEntryValue | null) => String(v ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

function readForm(form: FormData): { body: Record<string, unknown>; errors: Errors } {
  const keys = form.getAll('env_key').map(String);
  const values = form.getAll('env_value').map(String);
  const env: Record<string, string> = {};
  const errors: Errors = {};
  keys.forEach((k, i) => {
    const key = k.trim();
    if (!key && !values[i]) return;
    if (key in env) errors.env = `${key}: set twice; keep one row per variable.`;
    env[key] = values[i] ?? '';
  });
  return {
    body: {
      name: String(form.get('name') ?? '').trim(),
      model: String(form.get('model') ?? '').trim(),
      system_prompt: String(form.get('system_prompt') ?? ''),
      tools: form.getAll('tools').map(String),
      env,
      ...(form.get('vault') && {
        credential_ids: form.getAll('credential_ids').map(String),
        egress: { allow: lines(form.get('egress_allow')), deny: lines(form.get('egress_deny')) },
      }),
    },
    errors,
  };
}

export async function action(args: ActionFunctionArgs) {
  const id = args.params.id!;
  const form = await args.request.formData();
  const intent = form.get('intent');
  try {
    if (intent === 'delete') {
      await api(args, `/v1/agents/${encodeURIComponent(id)}`, { method: 'DELETE' });
      return redirect('/agents');
    }
    if (intent === 'start') return await startSession(args, id);
    const { body, errors } = readForm(form);
    if (Object.keys(errors).length) return { errors };
    const saved = await api<Agent>(args, id === 'new' ? '/v1/agents' : `/v1/agents/${encodeURIComponent(id)}`, {
      method: id === 'new' ? 'POST' : 'PATCH',
      body,
    });
    return redirect(`/agents/${saved.id}?saved=1`);
  } catch (err) {
    if (!(err instanceof ApiProblem)) throw err;
    const errors: Errors = err.status === 400 ? errorsByField(err.details, sentence(err.message)) : { form: sentence(err.message) };
    return { errors };
  }
}

function FieldMessage({ id, error, hint }: { id: string; error?: string; hint?: string }) {
  if (error)
    return (
      <p id={id} className="field-error" role="alert">
        {error}
      </p>
    );
  return hint ? (
    <p id={id} className="field-hint">
      {hint}
    </p>
  ) : null;
}

let rowIds = 0;
const envRows = (env: Record<string, string>) => Object.entries(env).map(([key, value]) => ({ id: ++rowIds, key, value }));

export default function AgentPage() {
  const { agent, models, credentials } = useLoaderData<typeof loader>();
  const errors: Errors = useActionData<typeof action>()?.errors ?? {};
  const navigation = useNavigation();
  const [params] = useSearchParams();
  const busy = navigation.state !== 'idle' ? navigation.formData?.get('intent') : undefined;
  const isNew = agent === null;

  return (
    <>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/agents">Agents</Link> <span aria-hidden="true">/</span> <span>{isNew ? 'New' : agent.name}</span>
      </nav>
      <PageHeader
        title={isNew ? 'New agent' : agent.name}
        subtitle={isNew ? 'Sessions started from it get these settings.' : <Mono>{agent.id}</Mono>}
        actions={
          isNew ? null : (
            <Form method="post">
              <button type="submit" name="intent" value="start" className="button" disabled={busy === 'start'}>
                {busy === 'start' ? 'Starting…' : 'Start session'}
              </button>
            </Form>
          )
        }
      />
      {params.get('saved') && !errors.form && navigation.state === 'idle' ? (
        <p className="notice success" role="status">
          Saved. New sessions use these settings.
        </p>
      ) : null}
      {errors.form ? (
        <p className="notice error" role="alert">
          {errors.form}
        </p>
      ) : null}

      {/* Keyed by the saved version: after a save, the form starts again from what was stored. */}
      <AgentForm key={agent?.updated_at ?? 'new'} agent={agent} models={models} credentials={credentials} errors={errors} busy={busy} />
    </>
  );
}

interface FormProps {
  agent: Agent | null;
  models: string[] | null;
  credentials: Credential[] | null;
  errors: Errors;
  busy: unknown;
}

function AgentForm({ agent, models, credentials, errors, busy }: FormProps) {
  const [rows, setRows] = useState(() => envRows(agent?.env ?? {}));
  const isNew = agent === null;
  const tools: readonly string[] = agent?.tools ?? TOOL_NAMES;
  const described = (field: keyof Errors, hint?: boolean) => (errors[field] || hint ? `${field}-message` : undefined);
  return (
      <Form method="post" className="card form" noValidate>
        <div className="field">
          <label htmlFor="name">Name</label>
          <input id="name" name="name" defaultValue={agent?.name ?? ''} required maxLength={200} aria-invalid={errors.name ? true : undefined} aria-describedby={described('name')} />
          <FieldMessage id="name-message" error={errors.name} />
        </div>

        <div className="field">
          <label htmlFor="model">Model</label>
          <input
            id="model"
            name="model"
            list="models"
            defaultValue={agent?.model ?? ''}
            required
            autoComplete="off"
            spellCheck={false}
            aria-invalid={errors.model ? true : undefined}
            aria-describedby={described('model', true)}
          />
          <datalist id="models">
            {(models ?? []).map((m) => (
              <option key={m} value={m} />
            ))}
          </datalist>
          <FieldMessage
            id="model-message"
            error={errors.model}
            hint={models === null ? "The gateway's model list could not be loaded; type a model name." : `Pick one of the gateway's ${models.length} models, or type a name.`}
          />
        </div>

        <div className="field">
          <label htmlFor="system_prompt">System prompt</label>
          <textarea id="system_prompt" name="system_prompt" rows={6} defaultValue={agent?.system_prompt ?? ''} aria-invalid={errors.system_prompt ? true : undefined} aria-describedby={described('system_prompt')} />
          <FieldMessage id="system_prompt-message" error={errors.system_prompt} />
        </div>

        <fieldset className="field" aria-describedby={described('tools', true)}>
          <legend>Tools</legend>
          <div className="checks">
            {TOOL_NAMES.map((t) => (
              <label key={t} className="check">
                <input type="checkbox" name="tools" value={t} defaultChecked={tools.includes(t)} />
                <Mono>{t}</Mono>
              </label>
            ))}
          </div>
          <FieldMessage id="tools-message" error={errors.tools} hint="Builtin tools the model may call in the session's sandbox." />
        </fieldset>

        <fieldset className="field" aria-describedby={described('env', true)}>
          <legend>Environment</legend>
          {rows.length ? (
            <div className="env-rows">
              {rows.map((r, i) => (
                <div className="env-row" key={r.id}>
                  <input name="env_key" aria-label={`Variable ${i + 1} name`} placeholder="NAME" defaultValue={r.key} spellCheck={false} autoComplete="off" className="mono-input" />
                  <input name="env_value" aria-label={`Variable ${i + 1} value`} placeholder="value" defaultValue={r.value} spellCheck={false} autoComplete="off" className="mono-input" />
                  <button type="button" className="button ghost small" aria-label={`Remove variable ${i + 1}`} onClick={() => setRows(rows.filter((x) => x.id !== r.id))}>
                    Remove
                  </button>
                </div>
              ))}
            </div>
          ) : null}
          <div>
            <button type="button" className="button small" onClick={() => setRows([...rows, { id: ++rowIds, key: '', value: '' }])}>
              Add variable
            </button>
          </div>
          <FieldMessage id="env-message" error={errors.env} hint="Set in the sandbox, beside every CONTAINER_ENV_X of the platform." />
        </fieldset>

        {credentials ? (
          <>
            <input type="hidden" name="vault" value="1" />
            <fieldset className="field" aria-describedby="credential_ids-message">
              <legend>Credentials</legend>
              {credentials.length ? (
                <div className="checks">
                  {credentials.map((c) => (
                    <label key={c.id} className="check" title={c.hosts.join(', ')}>
                      <input type="checkbox" name="credential_ids" value={c.id} defaultChecked={agent?.credential_ids?.includes(c.id)} />
                      <Mono>{c.name}</Mono>
                    </label>
                  ))}
                </div>
              ) : null}
              <FieldMessage
                id="credential_ids-message"
                error={errors.credential_ids}
                hint={credentials.length ? "The sandbox sees a stub; the vault proxy swaps in the real value only for the credential's hosts." : 'No credentials stored yet (POST /v1/credentials).'}
              />
            </fieldset>
            <div className="field-pair">
              <div className="field">
                <label htmlFor="egress_allow">Allowed hosts</label>
                <textarea id="egress_allow" name="egress_allow" rows={3} className="mono-input" defaultValue={agent?.egress?.allow.join('\n') ?? ''} placeholder={'api.github.com\n*.example.com'} aria-describedby="egress-message" />
              </div>
              <div className="field">
                <label htmlFor="egress_deny">Blocked hosts</label>
                <textarea id="egress_deny" name="egress_deny" rows={3} className="mono-input" defaultValue={agent?.egress?.deny.join('\n') ?? ''} placeholder="10.0.0.0/8" aria-describedby="egress-message" />
              </div>
            </div>
            <FieldMessage id="egress-message" error={errors.egress} hint="One host, *.wildcard, IP or CIDR per line. The gateway and the credentials' hosts are always allowed." />
          </>
        ) : null}

        <div className="form-actions">
          <button type="submit" name="intent" value="save" className="button primary" disabled={busy === 'save'}>
            {busy === 'save' ? 'Saving…' : isNew ? 'Create agent' : 'Save changes'}
          </button>
          <Link to="/agents" className="button ghost">
            Cancel
          </Link>
          {isNew ? null : (
            <button
              type="submit"
              name="intent"
              value="delete"
              className="button danger push-right"
              disabled={busy === 'delete'}
              onClick={(e) => {
                if (!confirm(`Delete ${agent.name}? Running sessions keep going; no new ones can start.`)) e.preventDefault();
              }}
            >
              {busy === 'delete' ? 'Deleting…' : 'Delete agent'}
            </button>
          )}
        </div>
      </Form>
  );
}

export function ErrorBoundary() {
  return <RouteError what="Agent" />;
}

// Sign in with an API key: checked against the API, then kept in an HttpOnly cookie.
import type { ActionFunctionArgs, LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { redirect } from '@remix-run/node';
import { Form, useActionData, useNavigation, useSearchParams } from '@remix-run/react';
import { rawApi } from '../lib/api.server.ts';
import { keyCookieHeader, readKey, safeNext } from '../lib/auth.server.ts';

export const meta: MetaFunction = () => [{ title: 'Sign in · Berth' }];

export async function loader({ request }: LoaderFunctionArgs) {
  if (await readKey(request)) throw redirect(safeNext(new URL(request.url).searchParams.get('next')));
  return null;
}

export async function action({ request, context }: ActionFunctionArgs) {
  const form = await request.formData();
  const key = String(form.get('key') ?? '').trim();
  const next = safeNext(String(form.get('next') ?? ''));
  if (!key) return { error: 'Enter your API key.' };
  let status: number;
  try {
    status = (await rawApi(context, key, '/v1/agents?limit=1')).status;
  } catch {
    return { error: 'The Berth API did not answer. Try again in a moment.' };
  }
  if (status === 401) return { error: 'That API key was not accepted. Check it and try again.' };
  if (status !== 200) return { error: `The API answered ${status}. Try again in a moment.` };
  return redirect(next, { headers: { 'set-cookie': await keyCookieHeader(request, key) } });
}

export default function Login() {
  const result = useActionData<typeof action>();
  const [params] = useSearchParams();
  const busy = useNavigation().state !== 'idle';
  const expired = params.get('reason') === 'expired';
  return (
    <div className="login card">
      <div className="login-brand">
        <span className="brand-mark" aria-hidden="true" />
        <span>Berth</span>
      </div>
      <h1>Sign in</h1>
      <p className="muted">Use an API key of your team. The admin key is printed by <code>npm start</code> and stored under <code>.data/</code>.</p>
      {expired && !result ? (
        <p className="notice" role="status">
          Your key is no longer accepted. Sign in again.
        </p>
      ) : null}
      <Form method="post" className="stack">
        <input type="hidden" name="next" value={params.get('next') ?? '/'} />
        <div className="field">
          <label htmlFor="key">API key</label>
          <input
            id="key"
            name="key"
            type="password"
            autoComplete="current-password"
            required
            autoFocus
            aria-invalid={result?.error ? true : undefined}
            aria-describedby={result?.error ? 'key-error' : undefined}
          />
          {result?.error ? (
            <p id="key-error" className="field-error" role="alert">
              {result.error}
            </p>
          ) : null}
        </div>
        <button type="submit" className="button primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </Form>
    </div>
  );
}

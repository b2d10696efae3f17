// The document and the app shell: a sidebar (a top bar on phones) once signed in, a centred card on
// the sign-in page. Errors anywhere below end in a readable message (ErrorBoundary), never a stack.
import type { LinksFunction, LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { Form, Links, Meta, NavLink, Outlet, Scripts, ScrollRestoration, useLoaderData, useNavigation, useRouteLoaderData } from '@remix-run/react';
import type { ReactNode } from 'react';
import { RouteError } from './components/route-error.tsx';
import { readKey } from './lib/auth.server.ts';
import stylesUrl from './styles.css?url';

export const links: LinksFunction = () => [
  { rel: 'stylesheet', href: stylesUrl },
  { rel: 'icon', href: 'data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 16 16%22%3E%3Crect width=%2216%22 height=%2216%22 rx=%224%22 fill=%22%235b5bd6%22/%3E%3C/svg%3E' },
];

export const meta: MetaFunction = () => [{ title: 'Berth' }];

export async function loader({ request }: LoaderFunctionArgs) {
  return { signedIn: (await readKey(request)) !== undefined };
}

export function Layout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <head>
        <meta charSet="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <Meta />
        <Links />
      </head>
      <body>
        {children}
        <ScrollRestoration />
        <Scripts />
      </body>
    </html>
  );
}

const nav = [
  { to: '/', label: 'Overview', end: true },
  { to: '/agents', label: 'Agents', end: false },
  { to: '/sessions', label: 'Sessions', end: false },
];

function Shell({ signedIn, children }: { signedIn: boolean; children: ReactNode }) {
  const navigation = useNavigation();
  if (!signedIn) return <main className="centered">{children}</main>;
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className="sidebar">
        <NavLink to="/" className="brand" aria-label="Berth overview">
          <span className="brand-mark" aria-hidden="true" />
          Berth
        </NavLink>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.to}>
                <NavLink to={n.to} end={n.end} prefetch="intent">
                  {n.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <Form method="post" action="/logout" className="signout">
          <button type="submit" className="button ghost small">
            Sign out
          </button>
        </Form>
      </aside>
      <main id="main" className={navigation.state === 'loading' ? 'content loading' : 'content'} aria-busy={navigation.state === 'loading'}>
        {children}
      </main>
    </div>
  );
}

export default function App() {
  const { signedIn } = useLoaderData<typeof loader>();
  return (
    <Shell signedIn={signedIn}>
      <Outlet />
    </Shell>
  );
}

export function ErrorBoundary() {
  const data = useRouteLoaderData<typeof loader>('root');
  return (
    <Shell signedIn={data?.signedIn ?? false}>
      <RouteError what="Page" />
    </Shell>
  );
}

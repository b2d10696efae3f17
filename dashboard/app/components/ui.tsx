// Shared pieces of the dashboard's pages: page headers, status badges, empty and error states.
import { Link } from '@remix-run/react';
import type { ReactNode } from 'react';
import { absolute, ago } from '../lib/format.ts';

export function PageHeader({ title, subtitle, actions }: { title: ReactNode; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <header className="page-header">
      <div className="page-header-text">
        <h1>{title}</h1>
        {subtitle ? <p className="muted">{subtitle}</p> : null}
      </div>
      {actions ? <div className="page-header-actions">{actions}</div> : null}
    </header>
  );
}

const tones: Record<string, string> = {
  active: 'green',
  running: 'green',
  starting: 'blue',
  recreating: 'blue',
  hibernated: 'amber',
  ended: 'gray',
  removed: 'gray',
  none: 'gray',
  failed: 'red',
};

export function Badge({ value, label }: { value: string; label?: string }) {
  return (
    <span className={`badge badge-${tones[value] ?? 'gray'}`}>
      <span className="badge-dot" aria-hidden="true" />
      {label ?? value}
    </span>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children ? <div className="muted">{children}</div> : null}
    </div>
  );
}

export function ErrorPanel({ title, message, status }: { title: string; message: string; status?: number }) {
  return (
    <div className="error-panel" role="alert">
      <p className="error-title">
        {title}
        {status ? <span className="muted"> · {status}</span> : null}
      </p>
      <p>{message}</p>
      <p>
        <Link to=".">Try again</Link> · <Link to="/">Back to the overview</Link>
      </p>
    </div>
  );
}

export function Time({ iso }: { iso: string }) {
  return (
    <time dateTime={iso} title={absolute(iso)} suppressHydrationWarning>
      {ago(iso)}
    </time>
  );
}

export function Mono({ children }: { children: ReactNode }) {
  return <code className="mono">{children}</code>;
}

// The error state every route shows: a readable message (the API's, or a generic one), never a stack.
import { isRouteErrorResponse, useRouteError } from '@remix-run/react';
import { ErrorPanel } from './ui.tsx';

export function RouteError({ what }: { what: string }) {
  const error = useRouteError();
  if (isRouteErrorResponse(error)) {
    const data = error.data as { message?: unknown } | string | undefined;
    const message = typeof data === 'object' && typeof data?.message === 'string' ? data.message : error.status === 404 ? 'There is nothing here.' : 'Something went wrong.';
    return <ErrorPanel title={error.status === 404 ? `${what} not found` : `Could not load ${what.toLowerCase()}`} message={message} status={error.status} />;
  }
  return <ErrorPanel title={`Could not load ${what.toLowerCase()}`} message="Something went wrong on our side. Try again in a moment." />;
}

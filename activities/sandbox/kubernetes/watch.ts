// Waits for one named object to reach a state, by watch. The watch resumes from a known
// resourceVersion (the create or patch response), so no change in between is missed; a watch the
// server or the network ends is reopened from the last version seen; a 410 Gone (that version was
// compacted away) is answered by a fresh list, whose version the next watch starts from.
import { type CustomObjectsApi, type KubeConfig, Watch } from '@kubernetes/client-node';
import { type KubeObject, type Readiness, type ResourceKind, SandboxClaimError, SandboxReadyTimeoutError } from './resources.ts';

export interface WaitOptions {
  kube: KubeConfig;
  api: CustomObjectsApi;
  kind: ResourceKind;
  namespace: string;
  name: string;
  /** The version of `initial`; the first watch starts there. */
  initial: KubeObject;
  evaluate: (obj: KubeObject) => Readiness;
  timeoutMs: number;
  /** The whole allowance, for the timeout message (timeoutMs may be what is left of it). */
  totalTimeoutMs?: number;
  signal?: AbortSignal;
  /** Called for each reconnect, with why (for logs and tests). */
  onRestart?: (why: 'closed' | 'error' | 'gone') => void;
}

type Ready = Extract<Readiness, { state: 'ready' }>;
type WatchEnd = { kind: 'settled' } | { kind: 'deleted' } | { kind: 'closed' } | { kind: 'error'; error: unknown } | { kind: 'gone' };

interface WatchEvent {
  type: string;
  object: KubeObject & { code?: number; message?: string };
}

export async function waitFor(opts: WaitOptions): Promise<Ready> {
  const deadline = Date.now() + opts.timeoutMs;
  const path = `${apiPath(opts.kind)}/namespaces/${opts.namespace}/${opts.kind.plural}`;
  let last: Readiness = opts.evaluate(opts.initial);
  let resourceVersion = opts.initial.metadata.resourceVersion;
  let failures = 0;

  for (;;) {
    if (last.state === 'ready') return last;
    if (last.state === 'failed') throw last.error;
    opts.signal?.throwIfAborted();
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) {
      throw new SandboxReadyTimeoutError(
        `${opts.name} was not ready after ${(opts.totalTimeoutMs ?? opts.timeoutMs) / 1000}s (last reason: ${last.reason})`,
      );
    }

    const end = await watchOnce(opts, path, resourceVersion, remainingMs, {
      version: (v) => (resourceVersion = v),
      object: (obj) => {
        last = opts.evaluate(obj);
        return last.state !== 'waiting';
      },
    });
    if (end.kind === 'settled') continue;
    if (end.kind === 'deleted') throw gone(opts);
    opts.onRestart?.(end.kind);
    if (end.kind === 'gone') {
      const fresh = await relist(opts);
      if (!fresh.obj) throw gone(opts);
      resourceVersion = fresh.listVersion;
      last = opts.evaluate(fresh.obj);
      continue;
    }
    // A cut connection (or an API server restart) is retried with a short, growing pause.
    failures = end.kind === 'error' ? failures + 1 : 0;
    if (failures > 0) await sleep(Math.min(2000, 100 * 2 ** failures), opts.signal);
  }
}

function watchOnce(
  opts: WaitOptions,
  path: string,
  resourceVersion: string | undefined,
  remainingMs: number,
  on: { version: (v: string) => void; object: (obj: KubeObject) => boolean },
): Promise<WatchEnd> {
  return new Promise((resolve) => {
    let controller: AbortController | undefined;
    let ended = false;
    const finish = (end: WatchEnd) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      controller?.abort();
      resolve(end);
    };
    const timer = setTimeout(() => finish({ kind: 'closed' }), remainingMs);
    const onAbort = () => finish({ kind: 'settled' });
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const query = {
      fieldSelector: `metadata.name=${opts.name}`,
      resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: Math.max(1, Math.ceil(remainingMs / 1000)),
    };
    new Watch(opts.kube)
      .watch(
        path,
        query,
        (type: string, object: WatchEvent['object']) => {
          if (ended) return;
          if (type === 'ERROR') {
            finish(object.code === 410 ? { kind: 'gone' } : { kind: 'error', error: new Error(object.message ?? 'watch error') });
            return;
          }
          if (object.metadata?.resourceVersion) on.version(object.metadata.resourceVersion);
          // A BOOKMARK carries only a version: nothing to evaluate.
          if (type === 'DELETED') finish({ kind: 'deleted' });
          else if (type !== 'BOOKMARK' && on.object(object)) finish({ kind: 'settled' });
        },
        (err: unknown) => {
          const status = (err as { statusCode?: number } | null)?.statusCode;
          finish(status === 410 ? { kind: 'gone' } : err ? { kind: 'error', error: err } : { kind: 'closed' });
        },
      )
      .then(
        (c) => {
          controller = c;
          if (ended) c.abort();
        },
        (error: unknown) => finish({ kind: 'error', error }),
      );
  });
}

function gone(opts: WaitOptions): SandboxClaimError {
  return new SandboxClaimError('Deleted', `${opts.kind.plural} ${opts.name} was deleted while waiting for it to be ready`);
}

async function relist(opts: WaitOptions): Promise<{ obj?: KubeObject; listVersion: string }> {
  const list = (await opts.api.listNamespacedCustomObject({
    ...opts.kind,
    namespace: opts.namespace,
    fieldSelector: `metadata.name=${opts.name}`,
  })) as { metadata: { resourceVersion: string }; items: KubeObject[] };
  return { obj: list.items[0], listVersion: list.metadata.resourceVersion };
}

function apiPath(kind: ResourceKind): string {
  return `/apis/${kind.group}/${kind.version}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

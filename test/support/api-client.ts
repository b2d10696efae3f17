// A small client for Berth's HTTP API, as a developer would use it with fetch: JSON calls and an
// SSE reader that understands `id:`/`event:`/`data:` frames and Last-Event-ID.

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export function apiClient(baseUrl: string, apiKey: string) {
  async function call<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const res = await fetch(new URL(path, baseUrl), {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }
  return {
    get: <T = any>(path: string, headers?: Record<string, string>) => call<T>('GET', path, undefined, headers),
    post: <T = any>(path: string, body?: unknown, headers?: Record<string, string>) => call<T>('POST', path, body ?? {}, headers),
    patch: <T = any>(path: string, body: unknown) => call<T>('PATCH', path, body),
    delete: <T = any>(path: string) => call<T>('DELETE', path),
    events: (sessionId: string, opts: ReadEventsOptions) => readEvents(baseUrl, apiKey, sessionId, opts),
  };
}

export interface SseEvent {
  id: number;
  type: string;
  data: any;
}

export interface ReadEventsOptions {
  lastEventId?: number;
  /** Stop (and close the connection) once this returns true for an event. */
  until: (e: SseEvent, all: SseEvent[]) => boolean;
  timeoutMs?: number;
  /** Called for every event as it arrives. */
  onEvent?: (e: SseEvent) => void;
}

/** Reads a session's SSE stream until `until` is satisfied; rejects on timeout with what was read. */
export async function readEvents(baseUrl: string, apiKey: string, sessionId: string, opts: ReadEventsOptions): Promise<SseEvent[]> {
  const ctrl = new AbortController();
  const events: SseEvent[] = [];
  const timer = setTimeout(() => ctrl.abort(), opts.timeoutMs ?? 60_000);
  try {
    const res = await fetch(new URL(`/v1/sessions/${sessionId}/events`, baseUrl), {
      headers: {
        authorization: `Bearer ${apiKey}`,
        accept: 'text/event-stream',
        ...(opts.lastEventId !== undefined ? { 'last-event-id': String(opts.lastEventId) } : {}),
      },
      signal: ctrl.signal,
    });
    if (res.status !== 200 || !res.body) throw new Error(`events: HTTP ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error('event stream closed early');
      buffer += decoder.decode(value, { stream: true });
      let sep: number;
      while ((sep = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, sep);
        buffer = buffer.slice(sep + 2);
        const e = parseFrame(frame);
        if (!e) continue;
        events.push(e);
        opts.onEvent?.(e);
        if (opts.until(e, events)) {
          ctrl.abort();
          return events;
        }
      }
    }
  } catch (err) {
    if (ctrl.signal.aborted) throw new Error(`timed out waiting for events; got: ${events.map((e) => `${e.id}:${e.type}`).join(' ')}`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function parseFrame(frame: string): SseEvent | undefined {
  let id: number | undefined;
  let type = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = Number(value);
    else if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (id === undefined) return undefined;
  return { id, type, data: JSON.parse(data.join('\n')) };
}

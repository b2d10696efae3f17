// Follows a session's events in the browser with EventSource. EventSource reconnects by itself and
// sends Last-Event-ID; when it gives up (an HTTP error), a new one resumes with ?after=<last id>.
// Every event is applied once (applyEvent ignores ids already seen), and renders are batched per frame.
import { useEffect, useRef, useState } from 'react';
import { applyEvent, emptyState, type LiveState } from './transcript.ts';

const EVENT_TYPES = [
  'message.created', 'message.delta', 'tool.started', 'tool.output', 'tool.finished',
  'turn.completed', 'turn.failed', 'turn.aborted', 'session.status', 'step.retry',
];
const RETRY_MS = 2_000;

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'closed';

export function useSessionEvents(sessionId: string, closed: boolean, onSettled: () => void) {
  const state = useRef<LiveState>(emptyState());
  const [, setVersion] = useState(0);
  const [connection, setConnection] = useState<Connection>('connecting');
  const closedRef = useRef(closed);
  closedRef.current = closed;
  const settledRef = useRef(onSettled);
  settledRef.current = onSettled;

  useEffect(() => {
    state.current = emptyState();
    setVersion((v) => v + 1);
    let source: EventSource | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let frame = 0;
    let settle: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;

    const render = () => {
      frame ||= requestAnimationFrame(() => {
        frame = 0;
        setVersion((v) => v + 1);
      });
    };
    const stop = (to: Connection) => {
      source?.close();
      setConnection(to);
    };
    const onEvent = (ev: MessageEvent<string>) => {
      const event = { id: Number(ev.lastEventId), type: ev.type, data: JSON.parse(ev.data) as Record<string, unknown> };
      if (!applyEvent(state.current, event)) return;
      render();
      if (event.type.startsWith('turn.') || event.type === 'session.status') {
        clearTimeout(settle);
        settle = setTimeout(() => settledRef.current(), 250); // usage and sandbox state from the API
      }
      if (event.type === 'session.status' && event.data.status === 'ended') {
        stopped = true;
        stop('closed');
      }
    };
    const connect = () => {
      const after = state.current.lastEventId;
      source = new EventSource(`/sessions/${encodeURIComponent(sessionId)}/events${after ? `?after=${after}` : ''}`);
      source.onopen = () => setConnection('live');
      for (const t of EVENT_TYPES) source.addEventListener(t, onEvent as EventListener);
      source.onerror = () => {
        if (stopped) return;
        // A closed session's stream ends once its events are out: nothing more will come.
        if (closedRef.current) {
          stopped = true;
          return stop('closed');
        }
        setConnection('reconnecting');
        if (source?.readyState === EventSource.CLOSED) retry = setTimeout(connect, RETRY_MS);
      };
    };
    connect();
    return () => {
      stopped = true;
      source?.close();
      clearTimeout(retry);
      clearTimeout(settle);
      cancelAnimationFrame(frame);
    };
  }, [sessionId]);

  return { live: state.current, connection };
}

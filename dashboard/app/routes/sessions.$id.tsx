// One session, live: the transcript with the reply streaming in, tool calls with their output,
// the composer (messages queue while a turn runs), abort and end, the sandbox's state, token usage,
// the workflow in the Temporal Web UI, and the vault's interceptions when the API has them.
import type { ActionFunctionArgs, LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { redirect } from '@remix-run/node';
import { Link, useFetcher, useLoaderData } from '@remix-run/react';
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { RouteError } from '../components/route-error.tsx';
import { Transcript } from '../components/transcript.tsx';
import { Badge, Empty, Mono, Time } from '../components/ui.tsx';
import { api, ApiProblem, load, loadOptional } from '../lib/api.server.ts';
import { count, sentence } from '../lib/format.ts';
import { buildTimeline, runningTurn } from '../lib/transcript.ts';
import type { Agent, Interception, Message, Page, Session } from '../lib/types.ts';
import { useSessionEvents, type Connection } from '../lib/use-session-events.ts';

export const meta: MetaFunction<typeof loader> = ({ data: d }) => [{ title: `${d?.agent?.name ?? 'Session'} · ${d?.session.id ?? ''} · Berth` }];

const MAX_TRANSCRIPT_PAGES = 50;

export async function loader(args: LoaderFunctionArgs) {
  const id = encodeURIComponent(args.params.id!);
  const session = await load<Session>(args, `/v1/sessions/${id}`);
  const messages: Message[] = [];
  const transcript = async () => {
    let cursor: string | null = null;
    for (let i = 0; i < MAX_TRANSCRIPT_PAGES; i++) {
      const page: Page<Message> = await load(args, `/v1/sessions/${id}/messages?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      messages.push(...page.data);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
  };
  const [agent, interceptions] = await Promise.all([
    loadOptional<Agent>(args, `/v1/agents/${encodeURIComponent(session.agent_id)}`),
    // The vault's record for this session; the panel is hidden where the API has none (404).
    loadOptional<Page<Interception>>(args, `/v1/sessions/${id}/interceptions?limit=100`).catch(() => undefined),
    transcript(),
  ]);
  return {
    session,
    agent: agent ?? null,
    messages,
    interceptions: interceptions?.data ?? null,
  };
}

export async function action(args: ActionFunctionArgs) {
  const id = encodeURIComponent(args.params.id!);
  const intent = (await args.request.formData()).get('intent');
  try {
    if (intent === 'abort') {
      await api(args, `/v1/sessions/${id}/abort`, { method: 'POST', body: {} });
      return { ok: true as const, error: null };
    }
    if (intent === 'end') {
      await api(args, `/v1/sessions/${id}`, { method: 'DELETE' });
      return redirect(`/sessions/${id}`);
    }
    return { ok: false as const, error: 'Unknown action.' };
  } catch (err) {
    if (err instanceof ApiProblem) return { ok: false as const, error: sentence(err.message) };
    throw err;
  }
}

interface Pending {
  localId: string;
  content: string;
  messageId?: string;
  error?: string;
}

const randomKey = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

const connectionText: Record<Connection, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  closed: 'Ended',
};

export default function SessionPage() {
  const loaded = useLoaderData<typeof loader>();
  const { agent, messages, interceptions } = loaded;
  // Status, sandbox state and usage, refreshed after status and turn events. Not a revalidation:
  // a refresh that fails while the network is down keeps the page as it is.
  const [session, setSession] = useState<Session>(loaded.session);
  useEffect(() => setSession(loaded.session), [loaded.session]);
  const closed = session.status === 'ended' || session.status === 'failed';
  const { live, connection } = useSessionEvents(session.id, closed, () => {
    fetch(`/sessions/${encodeURIComponent(session.id)}/summary`)
      .then(async (res) => (res.ok ? setSession((await res.json()) as Session) : undefined))
      .catch(() => undefined);
  });
  const blocks = buildTimeline(messages, live);
  const running = closed ? undefined : runningTurn(messages, live);
  const known = new Set([...messages.map((m) => m.id), ...[...live.messages.values()].map((m) => m.id)]);
  const [pending, setPending] = useState<Pending[]>([]);
  const waiting = pending.filter((p) => !p.messageId || !known.has(p.messageId));
  const abort = useFetcher<typeof action>();
  const end = useFetcher<typeof action>();

  // Keep the newest text in view while the reader is at the bottom.
  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  useEffect(() => {
    const el = scroller.current;
    if (el && pinned.current) el.scrollTop = el.scrollHeight;
  });
  const onScroll = () => {
    const el = scroller.current;
    if (el) pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  };

  const [draft, setDraft] = useState('');
  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    const content = draft.trim();
    if (!content) return;
    const localId = randomKey();
    setDraft('');
    pinned.current = true;
    setPending((p) => [...p, { localId, content }]);
    const update = (patch: Partial<Pending>) => setPending((p) => p.map((x) => (x.localId === localId ? { ...x, ...patch } : x)));
    try {
      const res = await fetch(`/sessions/${encodeURIComponent(session.id)}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ content, idempotency_key: localId }),
      });
      const body = (await res.json().catch(() => null)) as { message_id?: string; error?: { message?: string } } | null;
      if (res.ok && body?.message_id) update({ messageId: body.message_id });
      else update({ error: sentence(body?.error?.message ?? `The message was not sent (HTTP ${res.status}).`) });
    } catch {
      update({ error: 'The message was not sent: the connection failed.' });
    }
  };
  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) void send(e);
  };
  useEffect(() => {
    // Sent messages the transcript now holds are no longer pending.
    if (pending.some((p) => p.messageId && known.has(p.messageId))) setPending((p) => p.filter((x) => !x.messageId || !known.has(x.messageId)));
  });

  const lastBlock = blocks[blocks.length - 1];
  const thinking = running !== undefined && !(lastBlock?.kind === 'assistant' && lastBlock.streaming) && !(lastBlock?.kind === 'tool' && lastBlock.state === 'running');
  const usage = session.usage;

  return (
    <div className="session-page">
      <header className="page-header session-header">
        <div className="page-header-text">
          <nav className="crumbs" aria-label="Breadcrumb">
            <Link to="/sessions">Sessions</Link> <span aria-hidden="true">/</span> <Mono>{session.id}</Mono>
          </nav>
          <h1>{agent ? <Link to={`/agents/${agent.id}`}>{agent.name}</Link> : 'Deleted agent'}</h1>
          <div className="header-badges">
            <Badge value={session.status} />
            <Badge value={session.sandbox_state} label={`sandbox ${session.sandbox_state}`} />
            <span className={`conn conn-${connection}`} role="status">
              {connectionText[connection]}
            </span>
          </div>
        </div>
        <div className="page-header-actions">
          <abort.Form method="post">
            <button type="submit" name="intent" value="abort" className="button" disabled={running === undefined || abort.state !== 'idle'}>
              {abort.state !== 'idle' ? 'Aborting…' : 'Abort turn'}
            </button>
          </abort.Form>
          {closed ? null : (
            <end.Form
              method="post"
              onSubmit={(e) => {
                if (!confirm('End this session? Its sandbox is removed; the transcript stays.')) e.preventDefault();
              }}
            >
              <button type="submit" name="intent" value="end" className="button danger" disabled={end.state !== 'idle'}>
                {end.state !== 'idle' ? 'Ending…' : 'End session'}
              </button>
            </end.Form>
          )}
        </div>
      </header>
      {abort.data?.error || end.data?.error ? (
        <p className="notice error" role="alert">
          {abort.data?.error ?? end.data?.error}
        </p>
      ) : null}

      <div className="session-grid">
        <section className="chat card" aria-label="Conversation">
          <div className="transcript" ref={scroller} onScroll={onScroll} aria-live="off">
            {blocks.length === 0 && waiting.length === 0 ? (
              <Empty title="No messages yet">{closed ? 'This session ended before anything was said.' : 'Send the first message below.'}</Empty>
            ) : null}
            <Transcript blocks={blocks} />
            {waiting.map((p) => (
              <div key={p.localId} className="msg msg-user pending">
                <div className="bubble">{p.content}</div>
                <p className={p.error ? 'pending-note error' : 'pending-note'}>{p.error ?? (p.messageId ? 'Queued' : 'Sending…')}</p>
              </div>
            ))}
            {thinking ? (
              <div className="thinking" role="status">
                <span className="dots" aria-hidden="true">
                  <i />
                  <i />
                  <i />
                </span>
                Working…
              </div>
            ) : null}
          </div>
          <form className="composer" onSubmit={send}>
            <label htmlFor="composer" className="sr-only">
              Message
            </label>
            <textarea
              id="composer"
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
              onKeyDown={onKeyDown}
              rows={2}
              placeholder={closed ? 'This session has ended.' : running !== undefined ? 'Type a message; it runs after the current turn…' : 'Message the agent…'}
              disabled={closed}
            />
            <button type="submit" className="button primary" disabled={closed || !draft.trim()}>
              Send
            </button>
          </form>
        </section>

        <aside className="session-side" aria-label="Session details">
          <section className="card section">
            <h2>Details</h2>
            <dl className="facts">
              <dt>Status</dt>
              <dd>
                <Badge value={session.status} />
              </dd>
              <dt>Sandbox</dt>
              <dd>
                <Badge value={session.sandbox_state} />
              </dd>
              <dt>Tokens in</dt>
              <dd className="num">{count(usage.prompt_tokens)}</dd>
              <dt>Tokens out</dt>
              <dd className="num">{count(usage.completion_tokens)}</dd>
              <dt>Started</dt>
              <dd>
                <Time iso={session.created_at} />
              </dd>
              {session.ended_at ? (
                <>
                  <dt>Ended</dt>
                  <dd>
                    <Time iso={session.ended_at} />
                  </dd>
                </>
              ) : null}
              <dt>Model</dt>
              <dd>{agent ? <Mono>{agent.model}</Mono> : <span className="muted">unknown</span>}</dd>
            </dl>
            <a href={session.workflow_url} target="_blank" rel="noreferrer" className="button small block">
              Open workflow in Temporal ↗
            </a>
          </section>
          {interceptions ? (
            <section className="card section" aria-labelledby="interceptions-title">
              <h2 id="interceptions-title">Interceptions</h2>
              {interceptions.length ? (
                <ul className="interceptions">
                  {interceptions.map((i) => (
                    <li key={i.id}>
                      <div className="interception-head">
                        <Badge value={i.decision === 'blocked' ? 'failed' : 'active'} label={i.decision} />
                        <Time iso={i.at} />
                      </div>
                      <code className="mono">
                        {i.method} {i.host}
                        {i.path}
                      </code>
                      <span className="muted small">{i.credential ? `credential ${i.credential} · ${i.rule}` : i.rule}</span>
                    </li>
                  ))}
                </ul>
              ) : (
                <p className="muted small">No credential swaps or blocked requests yet.</p>
              )}
            </section>
          ) : null}
        </aside>
      </div>
    </div>
  );
}

export function ErrorBoundary() {
  return <RouteError what="Session" />;
}

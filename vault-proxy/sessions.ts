// What the proxy knows about a session, read from Postgres: the agent's credentials (opened with the
// vault keyring), their per-session stubs, and the egress policy (buildSessionView). The local proxy
// caches it briefly (SessionDirectory), so revoking a credential or changing a policy takes effect
// within CACHE_MS; for a sandbox pod the worker builds it and pushes it to the pod's sidecar.
import { db } from '../lib/db.ts';
import {
  DEFAULT_INJECTION, GATEWAY_CREDENTIAL, agentCredentialIds, INJECTION_KINDS, egressPolicySchema, gatewayStub, newStub, open, type InjectionKind, type Keyring,
} from '../lib/vault.ts';
import { SessionUnavailable, type SessionView } from './forward.ts';
import type { SessionSecret } from './swap.ts';

const CACHE_MS = 2_000;

export interface Gateway {
  url?: string;
  apiKey?: string;
}

/** Each credential's stub for the session, created on first use and stable afterwards. */
export async function sessionStubs(sessionId: string, credentials: { id: string; name: string }[]): Promise<Map<string, string>> {
  if (credentials.length === 0) return new Map();
  await db().credentialStub.createMany({
    data: credentials.map((c) => ({ sessionId, credentialId: c.id, stub: newStub(c.name) })),
    skipDuplicates: true,
  });
  const rows = await db().credentialStub.findMany({ where: { sessionId, credentialId: { in: credentials.map((c) => c.id) } } });
  return new Map(rows.map((r) => [r.credentialId, r.stub]));
}

/** The credentials a session's agent attaches, limited to the session's team. */
export async function sessionCredentials(sessionId: string) {
  const session = await db().session.findUnique({ where: { id: sessionId }, include: { agent: true } });
  if (!session) throw new SessionUnavailable(`session ${sessionId} does not exist`);
  const ids = agentCredentialIds(session.agent.credentialIds);
  const credentials = ids.length ? await db().credential.findMany({ where: { id: { in: ids }, teamId: session.teamId } }) : [];
  return { session, credentials };
}

/** The session's view: its credentials opened with `keyring`, their stubs, the gateway and the egress policy. */
export async function buildSessionView(sessionId: string, keyring: Keyring, gatewayConfig: Gateway): Promise<SessionView> {
  const { session, credentials } = await sessionCredentials(sessionId);
  if (session.status === 'ended') throw new SessionUnavailable(`session ${sessionId} has ended`);
  const stubs = await sessionStubs(sessionId, credentials);
  const secrets: SessionSecret[] = credentials.map((c) => ({
    name: c.name,
    stub: stubs.get(c.id)!,
    value: open(keyring, { keyId: c.keyId, ciphertext: Buffer.from(c.ciphertext) }, c.id),
    hosts: c.hosts,
    inject: c.inject.filter((k): k is InjectionKind => (INJECTION_KINDS as readonly string[]).includes(k)),
  }));
  const gatewayHosts: string[] = [];
  let gateway: SessionView['gateway'];
  if (gatewayConfig.url) {
    const url = new URL(gatewayConfig.url);
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const tls = url.protocol === 'https:';
    gateway = { host, port: Number(url.port) || (tls ? 443 : 80), tls };
    gatewayHosts.push(host);
    if (gatewayConfig.apiKey) {
      secrets.push({ name: GATEWAY_CREDENTIAL, stub: gatewayStub(gatewayConfig.apiKey, sessionId), value: gatewayConfig.apiKey, hosts: [host], inject: DEFAULT_INJECTION });
    }
  }
  const parsed = egressPolicySchema.safeParse(session.agent.egress ?? {});
  return {
    sessionId,
    secrets,
    gateway,
    egress: {
      // A policy the API would not have accepted falls back to the default (gateway and bound hosts).
      policy: parsed.success ? parsed.data : { allow: [], deny: [] },
      gatewayHosts,
      credentialHosts: secrets.map((s) => ({ name: s.name, hosts: s.hosts })),
    },
  };
}

export class SessionDirectory {
  private readonly cache = new Map<string, { at: number; view: Promise<SessionView> }>();

  constructor(
    private readonly keyring: Keyring,
    private readonly gateway: Gateway,
  ) {}

  load(sessionId: string): Promise<SessionView> {
    const hit = this.cache.get(sessionId);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.view;
    const view = buildSessionView(sessionId, this.keyring, this.gateway);
    this.cache.set(sessionId, { at: Date.now(), view });
    view.catch(() => this.cache.delete(sessionId));
    return view;
  }

  forget(sessionId: string): void {
    this.cache.delete(sessionId);
  }
}

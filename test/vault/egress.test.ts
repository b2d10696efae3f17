// Egress policy through a real proxy: hosts, wildcards and CIDRs; loopback, private and metadata
// addresses refused by default, judged on the address a name resolves to.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideEgress, unmapIPv4, type EgressContext } from '../../vault-proxy/egress.ts';
import { TunnelAgent, request, startProxy, startUpstream, type TestProxy, type Upstream } from './support.ts';
import { tempDir } from '../support/temp.ts';

let tmp: ReturnType<typeof tempDir>;
let upstream: Upstream;
let proxy: TestProxy;

const ctx = (allow: string[] = [], deny: string[] = [], extra: Partial<EgressContext> = {}): EgressContext => ({
  policy: { allow, deny },
  gatewayHosts: [],
  credentialHosts: [{ name: 'GITHUB_TOKEN', hosts: ['localhost'] }],
  ...extra,
});

beforeAll(async () => {
  tmp = tempDir('berth-vault-egress-');
  upstream = await startUpstream(tmp.dir);
  proxy = await startProxy(tmp.dir, { sessionId: 'ses_egresstest', secrets: [], egress: ctx() }, upstream.caFile);
});

afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  tmp?.remove();
});

/** GET through the proxy with a fresh tunnel; a refused CONNECT comes back as its status. */
async function get(url: string): Promise<{ status: number; rule?: string; body: string }> {
  const agent = new TunnelAgent(proxy.port, proxy.caPem);
  try {
    if (url.startsWith('http:')) {
      const u = new URL(url);
      const res = await request(`http://127.0.0.1:${proxy.port}/`, { path: url, headers: { host: u.host } });
      return { status: res.status, rule: res.headers['x-berth-rule'] as string | undefined, body: res.body };
    }
    const res = await request(url, { agent });
    return { status: res.status, body: res.body };
  } catch (err) {
    return { status: (err as { statusCode?: number }).statusCode ?? -1, body: String(err) };
  } finally {
    agent.destroy();
  }
}

function policy(allow: string[], deny: string[] = [], extra: Partial<EgressContext> = {}) {
  proxy.view.egress = ctx(allow, deny, extra);
}

const local = () => `https://localhost:${upstream.httpsPort}/echo`;
const lastRecord = () => proxy.recorder.records.at(-1)!;

describe('default policy', () => {
  it('refuses a name resolving to 127.0.0.1 even when a credential is bound to it', async () => {
    policy([]);
    expect((await get(local())).status).toBe(403);
    expect(lastRecord()).toMatchObject({ decision: 'blocked', host: 'localhost', method: 'CONNECT', rule: 'default:loopback' });
  });

  it('refuses the metadata address, and names the rule in the body', async () => {
    policy([]);
    const res = await get('http://169.254.169.254/latest/meta-data/');
    expect(res.status).toBe(403);
    expect(res.rule).toBe('default:not-allowed');
    expect(JSON.parse(res.body).error.details.rule).toBe('default:not-allowed');
    policy(['0.0.0.0/0']);
    const wide = await get('http://169.254.169.254/latest/meta-data/');
    expect(wide.status).toBe(403);
    expect(wide.rule).toBe('default:metadata');
  });

  it('refuses a host outside the policy without resolving it', async () => {
    policy([]);
    const res = await get('http://exfil.example.com/');
    expect([res.status, res.rule]).toEqual([403, 'default:not-allowed']);
  });

  it('lets the gateway through, loopback included', async () => {
    policy([], [], { gatewayHosts: ['localhost'] });
    expect((await get(local())).status).toBe(200);
  });
});

describe('allow and deny lists', () => {
  it('allows a loopback name listed exactly, or an address inside an allowed CIDR', async () => {
    policy(['localhost']);
    expect((await get(local())).status).toBe(200);
    policy(['127.0.0.1/32']);
    expect((await get(local())).status).toBe(200);
    expect((await get(`https://127.0.0.1:${upstream.httpsPort}/echo`)).status).toBe(200);
  });

  it('lets deny entries (host or CIDR) win over allow entries', async () => {
    policy(['localhost'], ['127.0.0.0/8']);
    expect((await get(local())).status).toBe(403);
    expect(lastRecord().rule).toBe('deny:127.0.0.0/8');
    policy(['127.0.0.1/32'], ['localhost']);
    expect((await get(local())).status).toBe(403);
    expect(lastRecord().rule).toBe('deny:localhost');
  });

  it('does not let a wildcard or a wide CIDR open a private address', async () => {
    expect(await decideEgress('localhost', ctx(['*.localhost', '0.0.0.0/0']))).toMatchObject({ allowed: false, rule: 'default:loopback' });
    expect(await decideEgress('10.1.2.3', ctx(['0.0.0.0/0']))).toMatchObject({ allowed: false, rule: 'default:private' });
    expect(await decideEgress('10.1.2.3', ctx(['10.0.0.0/8']))).toMatchObject({ allowed: true, rule: 'allow:10.0.0.0/8' });
    expect(await decideEgress('169.254.169.254', ctx(['169.254.0.0/16']))).toMatchObject({ allowed: false, rule: 'default:metadata' });
    expect(await decideEgress('169.254.169.254', ctx(['169.254.169.254']))).toMatchObject({ allowed: true });
  });

  it('sees through IPv4-mapped IPv6 literals', async () => {
    expect(unmapIPv4('::ffff:a9fe:a9fe')).toBe('169.254.169.254');
    expect(await decideEgress('[::ffff:169.254.169.254]', ctx(['::/0', '0.0.0.0/0']))).toMatchObject({ allowed: false, rule: 'default:metadata' });
    expect(await decideEgress('::1', ctx(['::/0']))).toMatchObject({ allowed: false, rule: 'default:loopback' });
  });

  it('matches *.wildcards on sub-domains only', async () => {
    const c = ctx(['*.example.com', '203.0.113.0/24'], [], { credentialHosts: [] });
    // 203.0.113.0/24 (TEST-NET-3) keeps the check local: literals need no DNS.
    expect(await decideEgress('203.0.113.7', c)).toMatchObject({ allowed: true, rule: 'allow:203.0.113.0/24' });
    expect(await decideEgress('example.com', ctx(['*.example.com'], [], { credentialHosts: [] }))).toMatchObject({ allowed: false });
    expect(await decideEgress('a.b.example.com', ctx([], ['*.example.com']))).toMatchObject({ allowed: false, rule: 'deny:*.example.com' });
  });
});

// The egress policy: which hosts a session may reach. Decided on the name and on every address it
// resolves to; the proxy then connects to the vetted address only, so DNS rebinding cannot swap it.
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { hostMatches, isCidr, isHostPattern, type EgressPolicy } from '../lib/vault.ts';

export interface EgressContext {
  policy: EgressPolicy;
  /** Host names of the LiteLLM gateway: always allowed, including on loopback or a private address. */
  gatewayHosts: string[];
  /** Bound hosts of the session's credentials, by credential name. */
  credentialHosts: { name: string; hosts: string[] }[];
}

export type EgressDecision =
  | { allowed: true; rule: string; address: string; family: 4 | 6 }
  | { allowed: false; rule: string; unresolved?: boolean };

// Ranges refused unless the host is named exactly in the allow list (or is the gateway), or an allow
// entry at least as narrow as the range holds the address: 0.0.0.0/0 does not open the metadata service.
const SPECIAL: [string, string][] = [
  ['metadata', '169.254.169.254/32'],
  ['metadata', 'fd00:ec2::254/128'],
  ['loopback', '127.0.0.0/8'],
  ['loopback', '::1/128'],
  ['unspecified', '0.0.0.0/8'],
  ['unspecified', '::/128'],
  ['link-local', '169.254.0.0/16'],
  ['link-local', 'fe80::/10'],
  ['private', '10.0.0.0/8'],
  ['private', '172.16.0.0/12'],
  ['private', '192.168.0.0/16'],
  ['private', '100.64.0.0/10'],
  ['private', 'fc00::/7'],
  ['multicast-or-reserved', '224.0.0.0/3'],
  ['multicast-or-reserved', 'ff00::/8'],
];

const prefixOf = (entry: string) => (entry.includes('/') ? Number(entry.split('/')[1]) : isIP(entry) === 4 ? 32 : 128);

function blockList(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const ip = c.split('/')[0]!;
    list.addSubnet(ip, prefixOf(c), isIP(ip) === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

const specialLists = SPECIAL.map(([label, cidr]) => ({ label, prefix: prefixOf(cidr), list: blockList([cidr]) }));

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d or ::ffff:xxxx:yyyy) as the IPv4 address it is. */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(address);
  if (!m) return address;
  if (m[1]) return m[1];
  const hi = parseInt(m[2]!, 16);
  const lo = parseInt(m[3]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

function contains(list: BlockList, address: string): boolean {
  return list.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
}

export function specialRange(address: string): { label: string; prefix: number } | undefined {
  return specialLists.find((r) => contains(r.list, address));
}

const isAddressEntry = (e: string) => isIP(e) !== 0 || isCidr(e);

/** Decides whether the session may connect to `rawHost`, and to which address. */
export async function decideEgress(rawHost: string, ctx: EgressContext): Promise<EgressDecision> {
  const host = rawHost.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const denyHost = ctx.policy.deny.find((e) => isHostPattern(e) && hostMatches(e, host));
  if (denyHost) return { allowed: false, rule: `deny:${denyHost}` };

  const nameRule =
    ctx.policy.allow.filter((e) => isHostPattern(e) && hostMatches(e, host)).map((e) => `allow:${e}`)[0] ??
    (ctx.gatewayHosts.includes(host) ? 'default:gateway' : undefined) ??
    ctx.credentialHosts.filter((c) => c.hosts.some((p) => hostMatches(p, host))).map((c) => `default:credential:${c.name}`)[0];
  // Only an exact name (not a wildcard, not a credential's binding) may lead to a special address.
  const namedExactly = ctx.policy.allow.includes(host) || ctx.gatewayHosts.includes(host);

  const allowAddrEntries = ctx.policy.allow.filter(isAddressEntry);
  // Without a name rule or an address rule there is nothing to check: refuse without a DNS query.
  if (!nameRule && allowAddrEntries.length === 0 && !isIP(host)) return { allowed: false, rule: 'default:not-allowed' };

  let addresses: { address: string; family: number }[];
  try {
    addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true, verbatim: true });
  } catch {
    return { allowed: false, rule: 'dns:unresolved', unresolved: true };
  }
  if (addresses.length === 0) return { allowed: false, rule: 'dns:unresolved', unresolved: true };

  const denyAddrs = ctx.policy.deny.filter(isAddressEntry);
  let rule = nameRule;
  for (const { address: raw } of addresses) {
    const address = unmapIPv4(raw);
    const denied = denyAddrs.find((e) => contains(blockList([e]), address));
    if (denied) return { allowed: false, rule: `deny:${denied}` };
    const allowEntry = allowAddrEntries.find((e) => contains(blockList([e]), address));
    if (!nameRule && !allowEntry) return { allowed: false, rule: 'default:not-allowed' };
    const special = specialRange(address);
    const opened = allowAddrEntries.some((e) => prefixOf(e) >= (special?.prefix ?? 0) && contains(blockList([e]), address));
    if (special && !namedExactly && !opened) return { allowed: false, rule: `default:${special.label}` };
    rule ??= `allow:${allowEntry}`;
  }
  const first = unmapIPv4(addresses[0]!.address);
  return { allowed: true, rule: rule!, address: first, family: isIP(first) === 6 ? 6 : 4 };
}

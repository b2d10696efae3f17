// Stub ↔ value replacement. A request's stubs become real values only for hosts the credential is bound
// to; a stub on its way anywhere else blocks the request. Real values coming back are turned into stubs.
import { Transform, type TransformCallback } from 'node:stream';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { STUB_PREFIX, hostMatches, type InjectionKind } from '../lib/vault.ts';

export interface SessionSecret {
  name: string;
  stub: string;
  value: string;
  hosts: string[];
  inject: InjectionKind[];
}

export const boundTo = (s: SessionSecret, host: string) => s.hosts.some((p) => hostMatches(p, host));

export type SwapResult =
  | { blocked: false; headers: OutgoingHttpHeaders; path: string; used: string[] }
  | { blocked: true; credential: string; rule: string };

// Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own: never forwarded.
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

class Swapper {
  readonly used = new Set<string>();
  blockedBy: SessionSecret | undefined;

  constructor(
    private readonly secrets: SessionSecret[],
    private readonly host: string,
  ) {}

  /** Replaces the stubs in `text` that `kind` may carry; notes a stub headed for an unbound host. */
  replace(text: string, kind: InjectionKind, encode: (v: string) => string = (v) => v): string {
    if (!text.includes(STUB_PREFIX)) return text;
    let out = text;
    for (const s of this.secrets) {
      if (!out.includes(s.stub)) continue;
      if (!boundTo(s, this.host)) {
        this.blockedBy ??= s;
      } else if (s.inject.includes(kind)) {
        out = out.split(s.stub).join(encode(s.value));
        this.used.add(s.name);
      }
    }
    return out;
  }

  /** Notes a stub headed for an unbound host without replacing anything. */
  detect(text: string): void {
    if (text.includes(STUB_PREFIX)) this.blockedBy ??= this.secrets.find((s) => text.includes(s.stub) && !boundTo(s, this.host));
  }

  header(name: string, value: string): string {
    const basic = /^(\s*basic\s+)([A-Za-z0-9+/=_-]+)\s*$/i.exec(value);
    if (name === 'authorization' && basic) {
      const decoded = Buffer.from(basic[2]!, 'base64').toString('utf8');
      const swapped = this.replace(decoded, 'basic_auth');
      if (swapped !== decoded) return basic[1] + Buffer.from(swapped, 'utf8').toString('base64');
    }
    return this.replace(value, 'header');
  }
}

/**
 * Swaps the stubs in a request's headers and URL for `host`. `rawPath` is the request target in origin
 * form (path and query). Headers come back without hop-by-hop ones; the caller sets Host.
 */
export function swapRequest(host: string, headers: IncomingHttpHeaders, rawPath: string, secrets: SessionSecret[]): SwapResult {
  const sw = new Swapper(secrets, host);
  const out: OutgoingHttpHeaders = {};
  const dropped = new Set((headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase()));
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || dropped.has(name) || name === 'host') continue;
    out[name] = Array.isArray(value) ? value.map((v) => sw.header(name, v)) : sw.header(name, value);
  }
  const q = rawPath.indexOf('?');
  const pathPart = q < 0 ? rawPath : rawPath.slice(0, q);
  const query = q < 0 ? '' : sw.replace(rawPath.slice(q), 'query', encodeURIComponent);
  sw.detect(pathPart); // a stub in the path is never swapped, but still must not leave for an unbound host
  if (sw.blockedBy) return { blocked: true, credential: sw.blockedBy.name, rule: `credential:${sw.blockedBy.name}:unbound-host` };
  return { blocked: false, headers: out, path: pathPart + query, used: [...sw.used] };
}

/** Replaces any real value in response headers with its stub. */
export function scrubHeaders(headers: IncomingHttpHeaders, secrets: SessionSecret[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const scrub = (v: string) => secrets.reduce((acc, s) => (acc.includes(s.value) ? acc.split(s.value).join(s.stub) : acc), v);
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    out[name] = Array.isArray(value) ? value.map(scrub) : scrub(value);
  }
  return out;
}

export interface Replacement {
  from: Buffer;
  to: Buffer;
  /** Called on a match; throwing fails the stream (used to stop a stub heading for an unbound host). */
  onMatch?: () => void;
}

/** Replaces byte strings in a stream, including across chunk boundaries, holding back at most the
 * longest pattern's length minus one byte. */
export class StreamReplacer extends Transform {
  private tail: Buffer = Buffer.alloc(0);
  private readonly keep: number;

  constructor(private readonly replacements: Replacement[]) {
    super();
    this.keep = Math.max(0, ...replacements.map((r) => r.from.length - 1));
  }

  /** Replaces everything in one buffer (for bodies small enough to hold). */
  static replaceAll(buf: Buffer, replacements: Replacement[]): Buffer {
    const r = new StreamReplacer(replacements);
    return Buffer.concat(r.replaceIn(buf, true));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let rest = chunk;
      if (this.tail.length && chunk.length >= this.keep) {
        // Only a match starting in the held-back tail can straddle the boundary, and it reaches at most
        // `keep` bytes into the chunk: settle it on a small buffer rather than copying the whole chunk.
        const joined = Buffer.concat([this.tail, chunk.subarray(0, this.keep)]);
        const { parts, pos } = this.scan(joined, this.tail.length);
        for (const part of parts) this.push(part);
        if (pos < this.tail.length) this.push(joined.subarray(pos, this.tail.length));
        rest = chunk.subarray(Math.max(0, pos - this.tail.length));
        this.tail = Buffer.alloc(0);
      }
      for (const part of this.replaceIn(this.tail.length ? Buffer.concat([this.tail, rest]) : rest, false)) this.push(part);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      for (const part of this.replaceIn(this.tail, true)) this.push(part);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  /** Replaces the matches that start before `limit`, leftmost first; `pos` is where the text after them begins. */
  private scan(buf: Buffer, limit: number): { parts: Buffer[]; pos: number } {
    const parts: Buffer[] = [];
    let pos = 0;
    for (;;) {
      let best = -1;
      let match: Replacement | undefined;
      for (const r of this.replacements) {
        const i = buf.indexOf(r.from, pos);
        if (i !== -1 && (best === -1 || i < best)) [best, match] = [i, r];
      }
      if (!match || best >= limit) return { parts, pos };
      match.onMatch?.();
      parts.push(buf.subarray(pos, best), match.to);
      pos = best + match.from.length;
    }
  }

  private replaceIn(buf: Buffer, final: boolean): Buffer[] {
    const { parts: out, pos } = this.scan(buf, Infinity);
    const safe = final ? buf.length : Math.max(pos, buf.length - this.keep);
    if (safe > pos) out.push(buf.subarray(pos, safe));
    this.tail = final ? Buffer.alloc(0) : Buffer.from(buf.subarray(safe));
    return out;
  }
}

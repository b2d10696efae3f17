import { createHash, randomBytes } from 'node:crypto';

const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';

export type IdPrefix = 'agt' | 'ses' | 'key' | 'cred' | 'evt' | 'msg';
/** Makes the ids of one write: random, or (for a write under an Idempotency-Key) the same ones on a retry. */
export type IdSource = (prefix: IdPrefix) => string;

/** A prefixed random id such as `ses_8k2m…` (16 Crockford base32 characters, 80 bits). */
export function newId(prefix: IdPrefix, bytes: Uint8Array = randomBytes(16)): string {
  let out = '';
  for (const b of bytes.subarray(0, 16)) out += alphabet[b & 31];
  return `${prefix}_${out}`;
}

/** Ids derived from `seed`: the nth id of a prefix is the same every time. */
export function seededIds(seed: string): IdSource {
  const counts = new Map<string, number>();
  return (prefix) => {
    const n = counts.get(prefix) ?? 0;
    counts.set(prefix, n + 1);
    return newId(prefix, createHash('sha256').update(`${seed}\0${prefix}\0${n}`).digest());
  };
}

import { randomBytes } from 'node:crypto';

const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';

/** A prefixed random id such as `ses_8k2m…` (Crockford base32, 128 bits). */
export function newId(prefix: 'agt' | 'ses' | 'key' | 'cred' | 'evt' | 'msg'): string {
  const bytes = randomBytes(16);
  let out = '';
  for (const b of bytes) out += alphabet[b & 31];
  return `${prefix}_${out.slice(0, 26)}`;
}

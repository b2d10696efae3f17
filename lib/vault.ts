// The vault's shared pieces: sealing credential values (AES-256-GCM, a key id on every row so keys can
// rotate), host patterns, injection kinds and stubs. Pure: no I/O except reading and writing the dev key file.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

export class VaultKeyError extends Error {
  override name = 'VaultKeyError';
}

export interface Keyring {
  currentId: string;
  keys: Map<string, Buffer>;
}

const KID = /^[A-Za-z0-9_.-]{1,32}$/;

function parseKey(kid: string, b64: string, variable: string): Buffer {
  if (!KID.test(kid)) throw new VaultKeyError(`${variable}: key id "${kid}" must match ${KID.source}`);
  const key = Buffer.from(b64.trim(), 'base64');
  if (key.length !== 32) throw new VaultKeyError(`${variable}: key "${kid}" must be 32 bytes of base64 (openssl rand -base64 32)`);
  return key;
}

/**
 * The keyring from the environment:
 * - `BERTH_VAULT_KEY=[kid:]base64` — one key (id `default` when none is given), used to seal and open;
 * - `BERTH_VAULT_KEYS=kid1:base64,kid2:base64` with `BERTH_VAULT_KEY_ID=kid2` — several keys during a
 *   rotation: new values are sealed with the current one, rows under any listed key still open.
 * Throws VaultKeyError with a message naming the variable when no usable key is configured.
 */
export function keyringFromEnv(env: Record<string, string | undefined>): Keyring {
  const keys = new Map<string, Buffer>();
  for (const entry of (env.BERTH_VAULT_KEYS ?? '').split(',').filter((s) => s.trim())) {
    const i = entry.indexOf(':');
    if (i < 1) throw new VaultKeyError('BERTH_VAULT_KEYS: expected kid:base64[,kid:base64…]');
    keys.set(entry.slice(0, i).trim(), parseKey(entry.slice(0, i).trim(), entry.slice(i + 1), 'BERTH_VAULT_KEYS'));
  }
  let currentId = env.BERTH_VAULT_KEY_ID?.trim();
  if (env.BERTH_VAULT_KEY?.trim()) {
    const v = env.BERTH_VAULT_KEY.trim();
    const i = v.indexOf(':');
    const kid = i > 0 ? v.slice(0, i) : 'default';
    keys.set(kid, parseKey(kid, i > 0 ? v.slice(i + 1) : v, 'BERTH_VAULT_KEY'));
    currentId ??= kid;
  }
  if (keys.size === 0) {
    throw new VaultKeyError(
      'No vault key: set BERTH_VAULT_KEY to 32 random bytes in base64 (openssl rand -base64 32). ' +
        '`npm start` generates a development key under the data directory; other processes need it set.',
    );
  }
  if (!currentId) {
    if (keys.size > 1) throw new VaultKeyError('BERTH_VAULT_KEY_ID: required when BERTH_VAULT_KEYS lists several keys');
    currentId = [...keys.keys()][0]!;
  }
  if (!keys.has(currentId)) throw new VaultKeyError(`BERTH_VAULT_KEY_ID: "${currentId}" is not among the configured keys`);
  return { currentId, keys };
}

/** The embedded install's key: generated once under the data dir (mode 0600); `npm start` passes it on. */
export function ensureDevVaultKey(dataDir: string): string {
  const file = path.join(dataDir, 'vault.key');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, `dev:${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  return readFileSync(file, 'utf8').trim();
}

export interface Sealed {
  keyId: string;
  /** iv (12 bytes) ‖ auth tag (16 bytes) ‖ ciphertext */
  ciphertext: Buffer;
}

/** Encrypts a value with the current key. `context` (e.g. the row's id) is authenticated, so a sealed
 * value copied to another row does not open. */
export function seal(keyring: Keyring, plaintext: string, context: string): Sealed {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyring.keys.get(keyring.currentId)!, iv);
  cipher.setAAD(Buffer.from(context));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { keyId: keyring.currentId, ciphertext: Buffer.concat([iv, cipher.getAuthTag(), body]) };
}

export function open(keyring: Keyring, sealed: Sealed, context: string): string {
  const key = keyring.keys.get(sealed.keyId);
  if (!key) throw new VaultKeyError(`vault key "${sealed.keyId}" is not configured (BERTH_VAULT_KEYS)`);
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.ciphertext.subarray(0, 12));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(sealed.ciphertext.subarray(12, 28));
  try {
    return Buffer.concat([decipher.update(sealed.ciphertext.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    throw new VaultKeyError(`a value sealed under key "${sealed.keyId}" failed authentication`);
  }
}

/** Re-seals under the current key when the row was sealed under another one; undefined when already current. */
export function reseal(keyring: Keyring, sealed: Sealed, context: string): Sealed | undefined {
  return sealed.keyId === keyring.currentId ? undefined : seal(keyring, open(keyring, sealed, context), context);
}

// Host patterns: exact names (`api.github.com`) or one leading wildcard label (`*.github.com`, which
// matches sub.github.com and a.b.github.com but not github.com itself).
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST_PATTERN = new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})*$`);

export function isHostPattern(p: string): boolean {
  return p.length <= 253 && HOST_PATTERN.test(p);
}

export function hostMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (pattern.startsWith('*.')) return h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1;
  return h === pattern;
}

export const hostPatternSchema = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .refine(isHostPattern, 'expected a host name or *.wildcard (e.g. api.github.com, *.github.com)');

/** Where a stub is replaced: `body` is opt-in because scanning bodies costs throughput and may surprise. */
export const INJECTION_KINDS = ['header', 'basic_auth', 'query', 'body'] as const;
export type InjectionKind = (typeof INJECTION_KINDS)[number];
export const DEFAULT_INJECTION: InjectionKind[] = ['header', 'basic_auth', 'query'];

/** A credential's name is the environment variable the agent sees. */
export const credentialNameSchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'expected an environment variable name such as GITHUB_TOKEN');

export const STUB_PREFIX = 'stub_';

const STUB_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const base32 = (bytes: Buffer) => [...bytes].map((b) => STUB_ALPHABET[b & 31]).join('');

/** `stub_<name>_<random>`: what the sandbox sees instead of the value. Unique per session and credential. */
export function newStub(name: string): string {
  return `${STUB_PREFIX}${name.toLowerCase()}_${base32(randomBytes(24))}`;
}

/** The gateway key is not a stored credential: its stub is derived from it and the session, so the
 * worker (which writes the sandbox's env) and the proxy agree without sharing state. */
export const GATEWAY_CREDENTIAL = 'LITELLM_API_KEY';
export function gatewayStub(gatewayKey: string, sessionId: string): string {
  const mac = createHmac('sha256', gatewayKey).update(`berth-gateway-stub\0${sessionId}`).digest();
  return `${STUB_PREFIX}${GATEWAY_CREDENTIAL.toLowerCase()}_${base32(mac.subarray(0, 24))}`;
}

/** `10.0.0.0/8`, `fd00::/8`: an IP address and a prefix length that fits its family. */
export function isCidr(s: string): boolean {
  const [ip, bits, extra] = s.split('/');
  if (extra !== undefined || !ip || !bits || !/^\d{1,3}$/.test(bits)) return false;
  const family = isIP(ip);
  return family !== 0 && Number(bits) <= (family === 4 ? 32 : 128);
}

const egressEntrySchema = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .refine((s) => isHostPattern(s) || isCidr(s) || isIP(s) !== 0, 'expected a host, *.wildcard, IP address or CIDR');

/** An agent's egress policy. Empty lists mean the default: the gateway and the credentials' bound hosts. */
export const egressPolicySchema = z
  .object({
    allow: z.array(egressEntrySchema).max(256).default([]),
    deny: z.array(egressEntrySchema).max(256).default([]),
  })
  .strict();
export type EgressPolicy = z.infer<typeof egressPolicySchema>;

/** The credential ids an agent row lists (a JSON array of strings; anything else counts as none). */
export function agentCredentialIds(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

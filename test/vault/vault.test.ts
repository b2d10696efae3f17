// Sealing values (AES-256-GCM with key ids), key rotation, host patterns, and the stream replacer.
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  VaultKeyError, egressPolicySchema, ensureDevVaultKey, hostMatches, hostPatternSchema, keyringFromEnv, newStub, open, reseal, seal,
} from '../../lib/vault.ts';
import { StreamReplacer } from '../../vault-proxy/swap.ts';
import { tempDir } from '../support/temp.ts';

const b64 = () => randomBytes(32).toString('base64');

describe('keyring from the environment', () => {
  it('stops with a message naming the variable when no key is set', () => {
    expect(() => keyringFromEnv({})).toThrow(VaultKeyError);
    expect(() => keyringFromEnv({})).toThrow(/BERTH_VAULT_KEY/);
  });

  it('rejects a key that is not 32 bytes, or a current id that is not configured', () => {
    expect(() => keyringFromEnv({ BERTH_VAULT_KEY: Buffer.alloc(16).toString('base64') })).toThrow(/32 bytes/);
    expect(() => keyringFromEnv({ BERTH_VAULT_KEYS: `a:${b64()},b:${b64()}` })).toThrow(/BERTH_VAULT_KEY_ID/);
    expect(() => keyringFromEnv({ BERTH_VAULT_KEYS: `a:${b64()}`, BERTH_VAULT_KEY_ID: 'z' })).toThrow(/"z"/);
  });

  it('reads one key with or without an id, and several with a current one', () => {
    expect(keyringFromEnv({ BERTH_VAULT_KEY: b64() }).currentId).toBe('default');
    expect(keyringFromEnv({ BERTH_VAULT_KEY: `k7:${b64()}` }).currentId).toBe('k7');
    const ring = keyringFromEnv({ BERTH_VAULT_KEYS: `old:${b64()},new:${b64()}`, BERTH_VAULT_KEY_ID: 'new' });
    expect([ring.currentId, [...ring.keys.keys()]]).toEqual(['new', ['old', 'new']]);
  });

  it('keeps the embedded dev key in a 0600 file under the data dir, stable across calls', () => {
    const tmp = tempDir('berth-vault-key-');
    try {
      const first = ensureDevVaultKey(tmp.dir);
      expect(ensureDevVaultKey(tmp.dir)).toBe(first);
      const file = path.join(tmp.dir, 'vault.key');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8').trim()).toBe(first);
      expect(keyringFromEnv({ BERTH_VAULT_KEY: first }).currentId).toBe('dev');
    } finally {
      tmp.remove();
    }
  });
});

describe('sealing', () => {
  it('round-trips a value and never stores it in clear', () => {
    const ring = keyringFromEnv({ BERTH_VAULT_KEY: `k1:${b64()}` });
    const sealed = seal(ring, 'ghp_secret_value_ü', 'cred_1');
    expect(sealed.keyId).toBe('k1');
    expect(sealed.ciphertext.includes(Buffer.from('ghp_secret_value'))).toBe(false);
    expect(open(ring, sealed, 'cred_1')).toBe('ghp_secret_value_ü');
    expect(seal(ring, 'same', 'c').ciphertext.equals(seal(ring, 'same', 'c').ciphertext)).toBe(false);
  });

  it('refuses a value moved to another row or tampered with', () => {
    const ring = keyringFromEnv({ BERTH_VAULT_KEY: b64() });
    const sealed = seal(ring, 'v', 'cred_1');
    expect(() => open(ring, sealed, 'cred_2')).toThrow(VaultKeyError);
    const tampered = Buffer.from(sealed.ciphertext);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => open(ring, { ...sealed, ciphertext: tampered }, 'cred_1')).toThrow(/authentication/);
  });

  it('rotates: old rows still open under the new keyring and reseal under the current key', () => {
    const k1 = b64();
    const k2 = b64();
    const before = keyringFromEnv({ BERTH_VAULT_KEY: `k1:${k1}` });
    const sealed = seal(before, 'token-before-rotation', 'cred_r');
    const during = keyringFromEnv({ BERTH_VAULT_KEYS: `k1:${k1},k2:${k2}`, BERTH_VAULT_KEY_ID: 'k2' });
    expect(open(during, sealed, 'cred_r')).toBe('token-before-rotation');
    const resealed = reseal(during, sealed, 'cred_r')!;
    expect(resealed.keyId).toBe('k2');
    expect(reseal(during, resealed, 'cred_r')).toBeUndefined();
    const after = keyringFromEnv({ BERTH_VAULT_KEY: `k2:${k2}` });
    expect(open(after, resealed, 'cred_r')).toBe('token-before-rotation');
    expect(() => open(after, sealed, 'cred_r')).toThrow(/"k1" is not configured/);
  });
});

describe('host patterns, egress entries and stubs', () => {
  it('accepts names and *.wildcards, rejects the rest', () => {
    expect(hostPatternSchema.parse(' API.GitHub.com ')).toBe('api.github.com');
    expect(hostPatternSchema.parse('*.github.com')).toBe('*.github.com');
    for (const bad of ['', '*', '*.', 'a.*.com', 'https://x.com', 'x.com/path', 'a b', '-a.com', '**.x.com']) {
      expect(hostPatternSchema.safeParse(bad).success, bad).toBe(false);
    }
  });

  it('matches wildcards on sub-domains only', () => {
    expect(hostMatches('*.github.com', 'api.github.com')).toBe(true);
    expect(hostMatches('*.github.com', 'a.b.github.com')).toBe(true);
    expect(hostMatches('*.github.com', 'github.com')).toBe(false);
    expect(hostMatches('*.github.com', 'evilgithub.com')).toBe(false);
    expect(hostMatches('api.github.com', 'API.GITHUB.COM.')).toBe(true);
  });

  it('validates egress entries', () => {
    expect(egressPolicySchema.parse({ allow: ['10.0.0.0/8', '*.x.com', '::1'] })).toEqual({ allow: ['10.0.0.0/8', '*.x.com', '::1'], deny: [] });
    expect(egressPolicySchema.safeParse({ allow: ['10.0.0.0/33'] }).success).toBe(false);
    expect(egressPolicySchema.safeParse({ allow: [], other: 1 }).success).toBe(false);
  });

  it('makes unique stubs that name the variable', () => {
    const a = newStub('GITHUB_TOKEN');
    expect(a).toMatch(/^stub_github_token_[0-9a-z]{24}$/);
    expect(newStub('GITHUB_TOKEN')).not.toBe(a);
  });
});

describe('stream replacer', () => {
  it('replaces across every possible chunk boundary', async () => {
    const input = Buffer.from('aa stub_x_123 bb stub_x_123stub_y_9 cc');
    const replacements = [
      { from: Buffer.from('stub_x_123'), to: Buffer.from('REAL-X-VALUE') },
      { from: Buffer.from('stub_y_9'), to: Buffer.from('Y') },
    ];
    const expected = 'aa REAL-X-VALUE bb REAL-X-VALUEY cc';
    expect(StreamReplacer.replaceAll(input, replacements).toString()).toBe(expected);
    for (let cut = 1; cut < input.length; cut++) {
      for (const size of [1, 3, 7, 9, 12, 20]) {
        const r = new StreamReplacer(replacements);
        const out: Buffer[] = [];
        r.on('data', (c: Buffer) => out.push(c));
        const done = new Promise((res) => r.on('end', res));
        r.write(input.subarray(0, cut));
        for (let i = cut; i < input.length; i += size) r.write(input.subarray(i, i + size));
        r.end();
        await done;
        expect(Buffer.concat(out).toString(), `cut ${cut} size ${size}`).toBe(expected);
      }
    }
  });
});

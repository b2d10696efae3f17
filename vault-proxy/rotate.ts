// Re-seals every credential under the current vault key: run after adding a key with
// BERTH_VAULT_KEYS=old:…,new:… and BERTH_VAULT_KEY_ID=new, before removing the old key.
// `npx tsx vault-proxy/rotate.ts` prints what it did; values are never printed.
import { loadConfig } from '../lib/config.ts';
import { closeDb, db } from '../lib/db.ts';
import { VaultKeyError, keyringFromEnv, reseal } from '../lib/vault.ts';

loadConfig();
let keyring;
try {
  keyring = keyringFromEnv(process.env);
} catch (err) {
  if (!(err instanceof VaultKeyError)) throw err;
  console.error(`rotate: ${err.message}`);
  process.exit(78);
}

const counts = { resealed: 0, current: 0, failed: 0 };
const unknownKeys = new Map<string, number>();
const rows = await db().credential.findMany({ select: { id: true, keyId: true, ciphertext: true } });
for (const row of rows) {
  if (row.keyId === keyring.currentId) {
    counts.current++;
  } else if (!keyring.keys.has(row.keyId)) {
    unknownKeys.set(row.keyId, (unknownKeys.get(row.keyId) ?? 0) + 1);
  } else {
    try {
      const sealed = reseal(keyring, { keyId: row.keyId, ciphertext: Buffer.from(row.ciphertext) }, row.id)!;
      // Only if nobody changed the row meanwhile (a PATCH seals under the current key anyway).
      const { count } = await db().credential.updateMany({
        where: { id: row.id, keyId: row.keyId },
        data: { keyId: sealed.keyId, ciphertext: new Uint8Array(sealed.ciphertext) },
      });
      counts.resealed += count;
    } catch (err) {
      counts.failed++;
      console.error(`rotate: credential ${row.id}: ${(err as Error).message}`);
    }
  }
}
console.log(JSON.stringify({ currentKey: keyring.currentId, ...counts, notConfiguredKeys: Object.fromEntries(unknownKeys) }));
await closeDb();
process.exit(counts.failed ? 1 : 0);

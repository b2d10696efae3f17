-- When the request holding an Idempotency-Key in progress claimed it: a claim held longer than any
-- write takes belongs to a process that died, and a retry takes it over (api/idempotency.ts).
ALTER TABLE "idempotency_keys" ADD COLUMN "claimed_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

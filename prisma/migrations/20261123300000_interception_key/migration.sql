-- The vault proxy's own name for an interception record (<epoch>:<seq>): storing a record twice (a
-- worker re-draining a pod's sidecar after a lost response) keeps one row.
ALTER TABLE "interceptions" ADD COLUMN "key" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "interceptions_key_key" ON "interceptions"("key");

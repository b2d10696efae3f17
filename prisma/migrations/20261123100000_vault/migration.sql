-- AlterTable
ALTER TABLE "agents" ADD COLUMN     "credential_ids" JSONB NOT NULL DEFAULT '[]',
ADD COLUMN     "egress" JSONB NOT NULL DEFAULT '{}';

-- CreateTable
CREATE TABLE "credentials" (
    "id" TEXT NOT NULL,
    "team_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "ciphertext" BYTEA NOT NULL,
    "key_id" TEXT NOT NULL,
    "hosts" TEXT[],
    "inject" TEXT[],
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "credentials_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "credential_stubs" (
    "session_id" TEXT NOT NULL,
    "credential_id" TEXT NOT NULL,
    "stub" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "credential_stubs_pkey" PRIMARY KEY ("session_id","credential_id")
);

-- CreateTable
CREATE TABLE "interceptions" (
    "id" BIGSERIAL NOT NULL,
    "session_id" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "host" TEXT NOT NULL,
    "method" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "credential_name" TEXT,
    "decision" TEXT NOT NULL,
    "rule" TEXT NOT NULL,
    CONSTRAINT "interceptions_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "credentials_team_id_name_key" ON "credentials"("team_id", "name");

-- CreateIndex
CREATE UNIQUE INDEX "credential_stubs_stub_key" ON "credential_stubs"("stub");

-- CreateIndex
CREATE INDEX "interceptions_session_id_id_idx" ON "interceptions"("session_id", "id");

-- AddForeignKey
ALTER TABLE "credentials" ADD CONSTRAINT "credentials_team_id_fkey" FOREIGN KEY ("team_id") REFERENCES "teams"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "credential_stubs" ADD CONSTRAINT "credential_stubs_session_id_fkey" FOREIGN KEY ("session_id") REFERENCES "sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "credential_stubs" ADD CONSTRAINT "credential_stubs_credential_id_fkey" FOREIGN KEY ("credential_id") REFERENCES "credentials"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "interceptions" ADD CONSTRAINT "interceptions_session_id_fkey" FOREIGN KEY ("session_id") REFERENCES "sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The workers' sweep looks each minute for deleted sessions that still hold a sandbox
-- (activities/sandbox/closed-sessions.ts): status 'ended' and a sandbox state other than removed.
CREATE INDEX "sessions_status_sandbox_state_idx" ON "sessions"("status", "sandbox_state");

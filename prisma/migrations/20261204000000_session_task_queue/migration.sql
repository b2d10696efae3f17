-- The task queue a session's workflow runs on. A deleted session whose workflow Temporal no longer
-- keeps can only be told apart by it: only that queue's workers hold its sandbox and may remove it
-- (activities/sandbox/closed-sessions.ts).
ALTER TABLE "sessions" ADD COLUMN "task_queue" TEXT;

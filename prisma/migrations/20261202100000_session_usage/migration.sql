-- A session's token usage, added up as its messages are recorded, so that reading a session (the
-- dashboard does after every turn) does not sum its whole transcript. BIGINT: every step's prompt
-- counts the whole context again, so a long session's total outgrows an INTEGER.
ALTER TABLE "sessions" ADD COLUMN "prompt_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN "completion_tokens" BIGINT NOT NULL DEFAULT 0;

UPDATE "sessions" s SET "prompt_tokens" = u.p, "completion_tokens" = u.c
FROM (SELECT "session_id", SUM("prompt_tokens") AS p, SUM("completion_tokens") AS c FROM "messages" GROUP BY "session_id") u
WHERE u."session_id" = s."id";

-- Only an inserted message counts: a repeated write of a seq inserts nothing (ON CONFLICT DO NOTHING).
CREATE FUNCTION "add_message_usage"() RETURNS trigger AS $$
BEGIN
  UPDATE "sessions"
  SET "prompt_tokens" = "prompt_tokens" + NEW."prompt_tokens", "completion_tokens" = "completion_tokens" + NEW."completion_tokens"
  WHERE "id" = NEW."session_id";
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "messages_add_usage" AFTER INSERT ON "messages"
  FOR EACH ROW WHEN (NEW."prompt_tokens" <> 0 OR NEW."completion_tokens" <> 0) EXECUTE FUNCTION "add_message_usage"();

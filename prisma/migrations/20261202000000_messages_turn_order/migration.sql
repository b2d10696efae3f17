-- A model step reads only the transcript rows after the last one its worker has, in (turn, seq)
-- order (activities/model/context.ts). Without this index that read went through every row of the
-- session: a step of a long session cost more than one of a short session.

-- CreateIndex
CREATE INDEX "messages_session_id_turn_seq_idx" ON "messages"("session_id", "turn", "seq");

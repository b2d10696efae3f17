-- A new event's notification carries the event, so a web process hands it to its SSE streams
-- without reading it back. A notification's payload must be under 8000 bytes: a larger event is
-- announced by session and seq only, and the streams read it from the table.
-- The new channel has a new name; the old one ("<session_id>:<seq>") is still notified for web
-- processes of the previous release, which serve until a rolling deploy replaces them.
CREATE OR REPLACE FUNCTION "notify_session_event"() RETURNS trigger AS $$
DECLARE
  payload TEXT := json_build_object('session_id', NEW.session_id, 'seq', NEW.seq, 'type', NEW.type, 'data', NEW.data)::text;
BEGIN
  IF octet_length(payload) >= 8000 THEN
    payload := json_build_object('session_id', NEW.session_id, 'seq', NEW.seq)::text;
  END IF;
  PERFORM pg_notify('session_events_v2', payload);
  PERFORM pg_notify('session_events', NEW.session_id || ':' || NEW.seq);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

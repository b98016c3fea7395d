-- The notifications processor claims an email before sending it and records the time the
-- mail server accepted it afterwards, with no transaction held while it talks to the server.
-- A row whose sent_at is NULL is an email claimed but not known to be sent (the processor
-- stopped in between): it is sent when its order event is delivered again. The edge lists
-- only the emails whose sent_at is set.
ALTER TABLE notifications ALTER COLUMN sent_at DROP NOT NULL;

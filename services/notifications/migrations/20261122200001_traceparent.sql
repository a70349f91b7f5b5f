-- The trace context of the event that queued the e-mail, so sending it
-- stays in the order's trace.
ALTER TABLE emails ADD COLUMN traceparent TEXT;

-- The W3C trace context of the last command that gave the worker work, so
-- the provider call and the reply it announces stay in the order's trace.
ALTER TABLE payments ADD COLUMN traceparent TEXT;

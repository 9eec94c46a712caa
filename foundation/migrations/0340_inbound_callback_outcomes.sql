-- Inbound callbacks are dialled: each ends with a final outcome (done, no_answer, cancelled,
-- queue_timeout, interrupted); `node` is the node dialling it (a start settles only its own
-- rows left `dialing`); `attempts_made` counts dials; `callback_contact` is the contact record
-- of the call that reached the customer; `ended_at` is when it closed (epoch ms).
ALTER TABLE inbound_callbacks ADD COLUMN node TEXT;
ALTER TABLE inbound_callbacks ADD COLUMN outcome TEXT;
ALTER TABLE inbound_callbacks ADD COLUMN attempts_made BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inbound_callbacks ADD COLUMN callback_contact TEXT;
ALTER TABLE inbound_callbacks ADD COLUMN ended_at BIGINT;

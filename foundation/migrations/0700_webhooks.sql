-- Outbound webhooks (web::integrations): the durable outbox of events for the CRM. One row per
-- (event, subscription), written in the process where the event is seen, ended `delivered` or
-- `failed` (kept, re-deliverable). Nodes claim a due row with a lease (PostgreSQL: FOR UPDATE SKIP
-- LOCKED), so two nodes never post the same row at once.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- whd_…: the X-Dialbridge-Delivery header, the receiver's idempotency key.
    delivery_id     TEXT   NOT NULL UNIQUE,
    -- The subscription's name (integrations.webhooks.<name>).
    subscription    TEXT   NOT NULL,
    -- contact.ended | contact.disposition | attempt.ended | lead.dnc
    event           TEXT   NOT NULL,
    -- What happened, once (e.g. contact.ended:<contact id>): an event is queued once per subscription.
    event_key       TEXT   NOT NULL,
    -- The JSON body, fixed when queued.
    payload         TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- The node posting it now, and until when its claim holds.
    lease_owner     TEXT,
    lease_until     BIGINT,
    -- The last try: HTTP status (NULL: no answer) and what went wrong.
    last_status     BIGINT,
    last_error      TEXT,
    last_attempt_at BIGINT,
    created_at      BIGINT NOT NULL,
    ended_at        BIGINT,
    UNIQUE (subscription, event_key)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- How far each event source has been read: (time, id) of the last row seen.
CREATE TABLE integration_cursors (
    source      TEXT   NOT NULL PRIMARY KEY,
    position    BIGINT NOT NULL,
    position_id BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- The sources are read in order of their end times.
CREATE INDEX inbound_contacts_ended ON inbound_contacts (ended_at);
CREATE INDEX dial_attempts_ended ON dial_attempts (ended_at);
CREATE INDEX dnc_entries_added ON dnc_entries (added_at);

-- Inbound: callbacks a flow scheduled (CreateCallbackContact / callback scheduling). The row keeps
-- the caller's original queue entry time so the callback keeps the caller's place.
CREATE TABLE inbound_callbacks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id       TEXT   NOT NULL,
    number           TEXT   NOT NULL,
    queue            TEXT   NOT NULL,
    -- When the caller first waited (epoch ms): the place kept in the queue.
    waiting_since    BIGINT NOT NULL,
    due_at           BIGINT NOT NULL,
    attempts_left    BIGINT NOT NULL,
    retry_delay_s    BIGINT NOT NULL,
    -- pending | dialing | done | failed
    status           TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX inbound_callbacks_due ON inbound_callbacks (status, due_at);
CREATE INDEX inbound_contacts_open ON inbound_contacts (ended_at);

-- Inbound: flows as versioned JSON documents (Amazon Connect flow language), numbers (DIDs)
-- mapped to flows, hours-of-operation schedules, and one final record per contact.
CREATE TABLE inbound_flows (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT   NOT NULL UNIQUE,
    -- The version new contacts run (the latest saved unless pinned back).
    current_version BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE inbound_flow_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id     BIGINT NOT NULL REFERENCES inbound_flows (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    -- The document as JSON text, exactly as exported.
    document    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT   NOT NULL,
    UNIQUE (flow_id, version)
);

CREATE TABLE inbound_numbers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    did        TEXT   NOT NULL UNIQUE,
    flow_id    BIGINT NOT NULL REFERENCES inbound_flows (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE inbound_hours (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT   NOT NULL UNIQUE,
    -- inbound::hours::HoursConfig as JSON.
    config     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE inbound_contacts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id   TEXT   NOT NULL UNIQUE,
    did          TEXT,
    flow_id      BIGINT,
    flow_version BIGINT,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    -- disconnected | queued | transferred_to_number | transferred_to_legacy | caller_hung_up | error
    outcome      TEXT,
    queue        TEXT,
    -- inbound::contact::ContactRecord as JSON (attributes, path with timestamps...).
    record       TEXT   NOT NULL
);
CREATE INDEX inbound_contacts_started ON inbound_contacts (started_at);

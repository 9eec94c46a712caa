-- Calls that arrived from the legacy platform on a from_legacy pool number, with the data their
-- lease carried (or why there was none). One row per call: its final record on the bridge side.
CREATE TABLE bridge_arrivals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    call_ref   TEXT   NOT NULL,
    dnis       TEXT   NOT NULL,
    ani        TEXT,
    pool_name  TEXT   NOT NULL,
    -- consumed | unknown | expired
    result     TEXT   NOT NULL,
    lease_id   TEXT,
    data       TEXT,
    arrived_at BIGINT NOT NULL
);
CREATE INDEX bridge_arrivals_dnis ON bridge_arrivals (dnis, arrived_at);

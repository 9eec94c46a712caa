-- Bridge: DNIS pools, their numbers (each number row holds its current lease), and the lease
-- history (one row per lease, closed with ended_at/end_reason: the final record).
CREATE TABLE bridge_pools (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT   NOT NULL UNIQUE,
    direction    TEXT   NOT NULL CHECK (direction IN ('to_legacy', 'from_legacy')),
    lease_ttl_ms BIGINT NOT NULL,
    cooldown_ms  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE bridge_numbers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_id    BIGINT NOT NULL REFERENCES bridge_pools (id) ON DELETE CASCADE,
    dnis       TEXT   NOT NULL UNIQUE,
    -- free | leased | consumed | released | expired
    state      TEXT   NOT NULL DEFAULT 'free',
    -- When the number last became (or, for a lease, will become) free: claim order and cooldown.
    free_since BIGINT NOT NULL DEFAULT 0,
    lease_id   TEXT,
    data       TEXT,
    ani        TEXT,
    leased_at  BIGINT,
    expires_at BIGINT,
    -- Removed from its pool while in use: not claimable, deleted once idle.
    removed    SMALLINT NOT NULL DEFAULT 0
);
CREATE INDEX bridge_numbers_claim ON bridge_numbers (pool_id, free_since);

CREATE TABLE bridge_leases (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    lease_id        TEXT   NOT NULL UNIQUE,
    pool_id         BIGINT NOT NULL,
    pool_name       TEXT   NOT NULL,
    number_id       BIGINT NOT NULL,
    dnis            TEXT   NOT NULL,
    ani             TEXT,
    idempotency_key TEXT,
    lessee          TEXT   NOT NULL,
    leased_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    ended_at        BIGINT,
    -- consumed | released | expired | pool_deleted | number_removed
    end_reason      TEXT,
    UNIQUE (pool_id, idempotency_key)
);
CREATE INDEX bridge_leases_open ON bridge_leases (ended_at, expires_at);

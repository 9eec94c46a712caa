-- The migration router: where each inbound number (or line of business, or site) goes while a
-- center moves from its legacy platform: local flows, the legacy platform, or a percentage split.
CREATE TABLE migration_routes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    match_kind     TEXT     NOT NULL CHECK (match_kind IN ('number', 'line_of_business', 'site')),
    match_value    TEXT     NOT NULL,
    -- Share of calls (0-100) sent to the legacy platform; the rest run the local flow.
    legacy_percent SMALLINT NOT NULL CHECK (legacy_percent BETWEEN 0 AND 100),
    local_flow     TEXT,
    legacy_target  TEXT,
    updated_at     BIGINT   NOT NULL,
    UNIQUE (match_kind, match_value)
);

-- One pacer per running campaign across nodes (dialer::lease): a database lease with heartbeat and
-- a fencing token. `token` only grows: every takeover by another node increments it, and the
-- writes that depend on being the pacer (hopper claims, opening attempts) check it in their
-- transaction, so a paused or partitioned former holder cannot dial after a takeover. A released
-- lease keeps its row (node '' and expired) so the token never goes back.
CREATE TABLE campaign_pacers (
    campaign_id  BIGINT NOT NULL PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    node         TEXT   NOT NULL,                   -- holder ('' once released)
    token        BIGINT NOT NULL,                   -- fencing token
    acquired_at  BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- Who took a campaign's pacer over from whom, and what the takeover closed (also in audit_log).
CREATE TABLE campaign_pacer_takeovers (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id       BIGINT NOT NULL,
    from_node         TEXT   NOT NULL,
    to_node           TEXT   NOT NULL,
    token             BIGINT NOT NULL,              -- the new holder's token
    expired_at        BIGINT NOT NULL,              -- when the old lease had expired
    at                BIGINT NOT NULL,
    interrupted       BIGINT NOT NULL DEFAULT 0,    -- open attempts closed as interrupted
    counted_abandoned BIGINT NOT NULL DEFAULT 0,
    released          BIGINT NOT NULL DEFAULT 0     -- claimed leads given back to the hopper
);
CREATE INDEX campaign_pacer_takeovers_campaign ON campaign_pacer_takeovers (campaign_id, at);

-- Takeover recovery that survives the taker (dialer::lease): a node taking the pacer over from an
-- expired holder registers the recovery it owes (close that holder's open attempts as
-- interrupted, give its claimed leads back) in the same transaction as the takeover, keyed to the
-- dead holder's fencing token. It is marked done only once carried out. If the taker dies first,
-- the next holder finds it pending (`campaign_pacers.recovering` = 1) and redoes it; the work is
-- idempotent (an attempt is finished once, a lead released once).
CREATE TABLE campaign_pacer_recoveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id BIGINT NOT NULL,
    from_node   TEXT   NOT NULL,                    -- the expired holder
    from_token  BIGINT NOT NULL,                    -- its fencing token
    expired_at  BIGINT NOT NULL,                    -- when its lease had expired
    created_by  TEXT   NOT NULL,                    -- the taker that registered it
    created_at  BIGINT NOT NULL,
    done_by     TEXT,                               -- the holder that carried it out (NULL: pending)
    done_at     BIGINT
);
CREATE UNIQUE INDEX campaign_pacer_recoveries_key ON campaign_pacer_recoveries (campaign_id, from_node, from_token);
ALTER TABLE campaign_pacers ADD COLUMN recovering SMALLINT NOT NULL DEFAULT 0;

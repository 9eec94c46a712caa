-- Recordings removed by the retention sweeper (web::recordings). The contact record keeps its
-- `recording_on` stage (the file existed); this row says the file is gone, when and why.
CREATE TABLE recording_expiries (
    contact_id TEXT   NOT NULL PRIMARY KEY,
    path       TEXT   NOT NULL,
    bytes      BIGINT,
    expired_at BIGINT NOT NULL,
    -- retention (deleted by the sweeper) | missing (the file was already gone)
    reason     TEXT   NOT NULL
);

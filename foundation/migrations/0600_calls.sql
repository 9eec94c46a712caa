-- Call detail records: one row per SIP call leg, opened when the call appears and always closed
-- with an outcome (a node that crashed closes its open rows as interrupted when it starts again).
CREATE TABLE calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_ref    TEXT   NOT NULL UNIQUE,
    node        TEXT   NOT NULL,
    -- inbound | outbound
    direction   TEXT   NOT NULL,
    from_uri    TEXT,
    to_uri      TEXT,
    -- ringing | answered | ended
    state       TEXT   NOT NULL,
    started_at  BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at    BIGINT,
    -- answered | busy | no_answer | rejected | number_disconnected | unreachable | congestion | interrupted
    outcome     TEXT,
    cause       TEXT,
    sip_code    BIGINT
);
CREATE INDEX calls_open ON calls (node, state);
CREATE INDEX calls_started ON calls (started_at);

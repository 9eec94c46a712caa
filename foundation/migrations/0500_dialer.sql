-- Outbound campaigns (dialer crate): campaigns, each campaign's view of its leads (the hopper),
-- dial attempts (written before the INVITE, finished exactly once) and per-number facts.
-- Portable types only (see foundation/src/db.rs): times BIGINT epoch ms, flags SMALLINT 0/1,
-- JSON as TEXT.

CREATE TABLE campaigns (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    state        TEXT    NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'running', 'paused', 'completed')),
    config       TEXT    NOT NULL,                  -- JSON CampaignConfig
    version      BIGINT  NOT NULL DEFAULT 1,        -- bumped by every change (optimistic updates)
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    started_at   BIGINT,                            -- first start: the 30-day abandonment periods count from here
    completed_at BIGINT
);

-- One row per (campaign, lead): the hopper. state: ready (dialable from next_at) | claimed (handed
-- to one dialer process) | dialing (an attempt is open) | filtered (fails the campaign's lead
-- filters) | done (finished: final_outcome says why).
CREATE TABLE campaign_leads (
    campaign_id    BIGINT  NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    lead_id        BIGINT  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    list_id        BIGINT  NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'ready'
                   CHECK (state IN ('ready', 'claimed', 'dialing', 'filtered', 'done')),
    priority       BIGINT  NOT NULL DEFAULT 0,
    attempts       BIGINT  NOT NULL DEFAULT 0,
    next_at        BIGINT  NOT NULL DEFAULT 0,      -- not before (retries, callbacks, window opening)
    claimed_by     TEXT,                            -- node id while claimed or dialing
    claimed_at     BIGINT,
    callback_agent TEXT,                            -- a same-agent callback: only this agent gets it
    last_outcome   TEXT,
    last_reason    TEXT,                            -- why the last dial was allowed or blocked
    final_outcome  TEXT,
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (campaign_id, lead_id)
);
CREATE INDEX campaign_leads_hopper ON campaign_leads (campaign_id, list_id, state, next_at);
CREATE INDEX campaign_leads_node ON campaign_leads (claimed_by, state);

-- Every call the dialer places (campaign dials and programmatic single calls). Written with state
-- 'dialing' before the INVITE; 'final' exactly once with the outcome.
CREATE TABLE dial_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id       TEXT    NOT NULL UNIQUE,        -- contact_… (API id)
    campaign_id     BIGINT  REFERENCES campaigns (id),
    lead_id         BIGINT,
    phone_position  BIGINT,
    e164            TEXT    NOT NULL,
    caller_id       TEXT    NOT NULL,
    node            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('dialing', 'ringing', 'answered', 'connected', 'final')),
    allowed_reason  TEXT    NOT NULL,               -- the compliance decision that let it dial
    outcome         TEXT,                           -- final outcome (see attempts::Outcome)
    disposition     TEXT,                           -- agent disposition code
    agent           TEXT,
    live            SMALLINT NOT NULL DEFAULT 0,    -- answered by a live person (abandonment denominator)
    abandoned       SMALLINT NOT NULL DEFAULT 0,
    sip_code        BIGINT,
    amd             TEXT,                           -- human | machine | unknown
    detail          TEXT,                           -- free text: hang-up cause, AMD reason
    attributes      TEXT    NOT NULL DEFAULT '{}',
    created_at      BIGINT  NOT NULL,
    answered_at     BIGINT,
    greeting_end_at BIGINT,
    bridged_at      BIGINT,
    ended_at        BIGINT
);
CREATE INDEX dial_attempts_open ON dial_attempts (node, state);
CREATE INDEX dial_attempts_number ON dial_attempts (e164, created_at);
CREATE INDEX dial_attempts_campaign ON dial_attempts (campaign_id, created_at);

-- Facts about a number that hold across campaigns: retired (disconnected) numbers.
CREATE TABLE dialer_numbers (
    e164           TEXT   NOT NULL PRIMARY KEY,
    retired_at     BIGINT,
    retired_reason TEXT,
    updated_at     BIGINT NOT NULL
);

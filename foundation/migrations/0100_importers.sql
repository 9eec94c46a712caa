-- Contact lists, leads and their phone numbers, do-not-call data and import jobs (importers crate).
-- Portable types only (see foundation/src/db.rs): times BIGINT epoch ms, flags SMALLINT 0/1,
-- JSON as TEXT. The PostgreSQL file declares the same tables.

CREATE TABLE lead_lists (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL UNIQUE,
    default_region TEXT    NOT NULL DEFAULT 'US',   -- ISO 3166 region for numbers without +CC
    description    TEXT    NOT NULL DEFAULT '',
    active         SMALLINT NOT NULL DEFAULT 1,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);

CREATE TABLE import_jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id      TEXT    NOT NULL UNIQUE,          -- importjob_… (API id)
    list_id        BIGINT  NOT NULL REFERENCES lead_lists (id),
    file_name      TEXT    NOT NULL,
    file_size      BIGINT  NOT NULL DEFAULT 0,
    state          TEXT    NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    options        TEXT    NOT NULL DEFAULT '{}',    -- JSON ImportOptions
    rows_committed BIGINT  NOT NULL DEFAULT 0,       -- data rows fully accounted for in the DB
    report         TEXT    NOT NULL DEFAULT '{}',    -- JSON ImportReport as of rows_committed
    error          TEXT,
    started_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX import_jobs_list ON import_jobs (list_id, id);

CREATE TABLE leads (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id         BIGINT  NOT NULL REFERENCES lead_lists (id) ON DELETE CASCADE,
    dedupe_key      TEXT    NOT NULL,                -- 'crm:<id>' or 'tel:<first valid E.164>'
    crm_id          TEXT,
    priority        BIGINT  NOT NULL DEFAULT 0,      -- higher first
    state           TEXT    NOT NULL DEFAULT 'new',  -- new | dialable | undialable | done | … (dialer-owned after import)
    first_name      TEXT,
    last_name       TEXT,
    email           TEXT,
    postal_code     TEXT,
    subdivision     TEXT,                            -- US state / province as given
    country         TEXT,                            -- ISO region of the first number
    attributes      TEXT    NOT NULL DEFAULT '{}',   -- JSON object of unmapped columns
    consent_type    TEXT,                            -- e.g. pewc (prior express written consent)
    consent_source  TEXT,
    consent_at      BIGINT,
    import_job_id   BIGINT  REFERENCES import_jobs (id),
    source_row      BIGINT,                          -- 1-based data row in the imported file
    attempts        BIGINT  NOT NULL DEFAULT 0,
    last_attempt_at BIGINT,
    next_attempt_at BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (list_id, dedupe_key)
);
CREATE INDEX leads_hopper ON leads (list_id, state, priority, id);

-- A number is identified by (lead_id, position): the table is clustered on that key (no separate
-- id column).
CREATE TABLE lead_phones (
    lead_id       BIGINT  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    position      BIGINT   NOT NULL,                 -- 0 = try first
    e164          TEXT    NOT NULL,
    extension     TEXT,
    raw           TEXT    NOT NULL,                  -- as written in the file
    source_column TEXT    NOT NULL,
    number_type   TEXT    NOT NULL,                  -- fixed_line | mobile | fixed_line_or_mobile | toll_free | voip | …
    region        TEXT,                              -- ISO region of the number
    tz_candidates TEXT    NOT NULL DEFAULT '[]',     -- JSON [{"tz":"America/Chicago","sources":["postal_code","area_code"]}, …]
    tz_ambiguous  SMALLINT NOT NULL DEFAULT 0,       -- 1: candidates disagree or the area code spans zones
    dialable      SMALLINT NOT NULL DEFAULT 1,       -- 0: no candidate zone, or on a DNC list
    dnc           SMALLINT NOT NULL DEFAULT 0,
    dnc_source    TEXT,                              -- 'internal' or 'registry:<name>'
    attempts      BIGINT  NOT NULL DEFAULT 0,
    last_result   TEXT,
    PRIMARY KEY (lead_id, position)
);
-- Deliberately no index on e164: random inserts into it were 55% of SQLite's import time at
-- 1M rows (14.4 s → 6.3 s CPU). A feature that looks leads up by number adds its own index.

-- Rows of an import that did not become (new or updated) leads, with the reason: rejected,
-- duplicate or dnc. `fields` is the original row as a JSON array of strings.
CREATE TABLE import_row_outcomes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     BIGINT  NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    source_row BIGINT  NOT NULL,
    outcome    TEXT    NOT NULL CHECK (outcome IN ('rejected', 'duplicate', 'dnc')),
    reason     TEXT    NOT NULL,
    fields     TEXT    NOT NULL
);
CREATE INDEX import_row_outcomes_job ON import_row_outcomes (job_id, source_row);

-- The internal do-not-call list, one row per E.164 number.
CREATE TABLE dnc_entries (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    e164     TEXT   NOT NULL UNIQUE,
    reason   TEXT   NOT NULL DEFAULT '',
    source   TEXT   NOT NULL DEFAULT 'manual',       -- manual | agent | import | api
    added_at BIGINT NOT NULL,
    added_by TEXT
);

-- Uploaded registry files (national DNC registries). Numbers are stored compactly in `numbers`:
-- the sorted E.164 digit strings as u64, delta-encoded as LEB128 varints.
CREATE TABLE dnc_registries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    file_name     TEXT    NOT NULL,
    entries       BIGINT  NOT NULL,
    numbers       BLOB    NOT NULL,
    downloaded_at BIGINT  NOT NULL,                  -- when the registry copy was downloaded
    loaded_at     BIGINT  NOT NULL,
    active        SMALLINT NOT NULL DEFAULT 1
);
CREATE INDEX dnc_registries_name ON dnc_registries (name, active);

-- A flow version saved from an Amazon Connect import with its unsupported actions skipped
-- (web: POST /api/v1/flows/import with allow_unsupported): 1 when the version compiles leniently,
-- those actions standing in and taking their error branch at run time; 0 (every version saved
-- before this column, and every normal save) when it must compile strictly.
ALTER TABLE inbound_flow_versions ADD COLUMN skip_unsupported SMALLINT NOT NULL DEFAULT 0;

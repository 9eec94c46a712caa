-- AMD false machines and agentless flows on outbound calls (dialer).
-- live_person_after_machine: the AMD said "machine" but the callee then showed itself a live
-- person (a key pressed during or before the message, or a short reply followed by a pause that
-- the AMD classifies as human); such an attempt also has live = 1 and abandoned = 1, so it counts
-- as abandoned in every abandonment rate. `evidence` says what was observed.
-- flow_id: the flow that ran on the answered call (agentless_flow or a single call's flow).
ALTER TABLE dial_attempts ADD COLUMN live_person_after_machine SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE dial_attempts ADD COLUMN evidence TEXT;
ALTER TABLE dial_attempts ADD COLUMN flow_id TEXT;

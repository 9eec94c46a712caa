-- Leasing updates a number row twice per cycle and closes a lease row once. Indexes on columns
-- those updates change (free_since; ended_at) make every update write new index entries and leave
-- dead ones that claims must step over (PostgreSQL cannot use heap-only updates then), which
-- slowed a busy pool down between vacuums. Claims scan their pool's rows (a pool is small) and sort
-- them; the rare "open leases of a pool" query scans by pool.
DROP INDEX bridge_numbers_claim;
CREATE INDEX bridge_numbers_pool ON bridge_numbers (pool_id);
DROP INDEX bridge_leases_open;
CREATE INDEX bridge_leases_pool ON bridge_leases (pool_id);

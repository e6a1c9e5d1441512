-- Full checks may read from a streaming replica (DATABASE_REPLICA_URL): each
-- check records where it read, the replica's replay position its snapshot
-- had, and how far behind the primary the replica was then.
ALTER TABLE integrity_checks
  ADD COLUMN read_from text CHECK (read_from IN ('primary', 'replica')),
  ADD COLUMN replica_lsn pg_lsn,
  ADD COLUMN replica_lag_s double precision CHECK (replica_lag_s >= 0);

-- The view took integrity_checks' columns when it was made: it gets the new ones too.
CREATE OR REPLACE VIEW latest_full_check AS
SELECT * FROM integrity_checks
WHERE outcome = 'success' AND scope_user_id IS NULL
ORDER BY id DESC
LIMIT 1;

-- Integrity scan: per-phase timings of a check, and the indexes the health API reads by.

ALTER TABLE integrity_checks ADD COLUMN timings jsonb;

-- GET /health/status and /health/violations: the latest successful full check, one index probe.
CREATE INDEX integrity_checks_latest_full_idx ON integrity_checks (id DESC)
  WHERE outcome = 'success' AND scope_user_id IS NULL;

-- GET /health/metrics: the runs of a time window.
CREATE INDEX integrity_checks_full_started_idx ON integrity_checks (started_at)
  WHERE scope_user_id IS NULL;

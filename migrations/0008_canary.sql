-- Canary rollout of the dashboard: the rollout percentage starts at 100 on a
-- fresh install (0001 seeded 0, which nothing read and nobody could change
-- before this migration, so an untouched row is raised to 100), and request
-- figures every instance writes, so the canary's error rate and latency are
-- judged from shared data rather than one process's memory.

UPDATE app_settings SET value = '100', updated_at = now()
WHERE key = 'dashboard_rollout_percent' AND value = '0' AND updated_by IS NULL;

-- Per minute, per instance, per cohort ('canary': requests of admins in the
-- rollout; 'other': everyone else): counts and a latency histogram whose
-- bucket bounds live in lib/canary/request_stats.ts. Instances add to their
-- own rows every few seconds.
CREATE TABLE request_stats (
  minute timestamptz NOT NULL,
  instance text NOT NULL,
  cohort text NOT NULL CHECK (cohort IN ('canary', 'other')),
  requests bigint NOT NULL CHECK (requests >= 0),
  errors bigint NOT NULL CHECK (errors >= 0 AND errors <= requests),
  latency_buckets bigint[] NOT NULL,
  PRIMARY KEY (minute, cohort, instance)
);

-- Who changed the rollout, from what, to what and why: audit_log rows with
-- action 'rollout.set'; the latest one is the current step's start.
CREATE INDEX audit_log_action_at_idx ON audit_log (action, at DESC);

-- Shared rate-limit counters (RATE_LIMIT_STORE=postgres): one row per client
-- key and fixed window. UNLOGGED: counters are worth losing on a crash in
-- exchange for no WAL traffic on every request.
CREATE UNLOGGED TABLE rate_limit_hits (
  key text PRIMARY KEY CHECK (length(key) <= 200),
  hits integer NOT NULL CHECK (hits >= 0),
  reset_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_hits_reset_idx ON rate_limit_hits (reset_at);

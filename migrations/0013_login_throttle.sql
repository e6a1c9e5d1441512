-- Failed sign-ins per account, shared by every instance (lib/login_throttle.ts
-- holds the policy). The account is the email as it was typed, matched the way
-- a login matches users (lower()), so an unknown email is counted exactly like
-- a known one; only its SHA-256 is kept, never the typed text (people type
-- passwords into email fields). A row exists only after a failure: a sign-in
-- of an account without one reads an index and writes nothing.

CREATE FUNCTION login_account_key(email text) RETURNS bytea
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT sha256(convert_to(lower(email), 'UTF8')) $$;

CREATE TABLE login_failures (
  account bytea PRIMARY KEY,
  -- Failures since the streak began (it restarts after a quiet period).
  failures integer NOT NULL CHECK (failures > 0),
  last_failed_at timestamptz NOT NULL,
  -- Attempts before this are refused without a password check (null: none).
  blocked_until timestamptz
);
CREATE INDEX login_failures_last_failed_idx ON login_failures (last_failed_at);

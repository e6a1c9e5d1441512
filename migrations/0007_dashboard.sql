-- The admin dashboard: cookie sessions shared by every instance, and a
-- notification whenever a full check starts or ends, so open pages on any
-- instance update within a second (LISTEN levelguard_checks).

CREATE TABLE admin_sessions (
  -- sha256 of the cookie's random token: a stolen table row is no session.
  token_hash text PRIMARY KEY,
  user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The per-session CSRF token forms and htmx requests carry.
  csrf_token text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expires_idx ON admin_sessions (expires_at);
CREATE INDEX admin_sessions_user_idx ON admin_sessions (user_id);

CREATE FUNCTION notify_check_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('levelguard_checks', json_build_object(
    'id', NEW.id, 'outcome', NEW.outcome, 'trigger', NEW.trigger, 'status', NEW.status)::text);
  RETURN NULL;
END
$$;

-- Full checks only (a one-student check never becomes the status); delivered on commit.
CREATE TRIGGER integrity_checks_notify
  AFTER INSERT OR UPDATE OF outcome ON integrity_checks
  FOR EACH ROW WHEN (NEW.scope_user_id IS NULL AND NEW.outcome <> 'skipped')
  EXECUTE FUNCTION notify_check_change();

-- The coupling rules, written once: what is wrong with one progress/license
-- pair, given its rows' values. The integrity scan applies it to every pair
-- (set-based, inlined by the planner) and the dashboard's student page to
-- one student's pairs.
CREATE FUNCTION pair_violations(
  has_progress boolean,
  has_license boolean,
  progress_level integer,
  license_level integer,
  max_achieved_level integer,
  expected_level integer,
  total_xp bigint,
  ledger_xp double precision
) RETURNS TABLE (kind text, details jsonb)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT k.kind, k.details FROM (VALUES
    ('LEVEL_MISMATCH', has_progress AND has_license AND license_level <> progress_level,
      jsonb_build_object('progress_level', progress_level, 'license_level', license_level)),
    ('MISSING_LICENSE', NOT has_license,
      jsonb_build_object('progress_level', progress_level, 'total_xp', total_xp)),
    ('ORPHAN_LICENSE', NOT has_progress,
      jsonb_build_object('license_level', license_level, 'max_achieved_level', max_achieved_level)),
    ('MAX_LEVEL_BELOW_CURRENT', has_license AND max_achieved_level < license_level,
      jsonb_build_object('license_level', license_level, 'max_achieved_level', max_achieved_level)),
    ('LEVEL_XP_MISMATCH', has_progress AND progress_level <> expected_level,
      jsonb_build_object('progress_level', progress_level, 'total_xp', total_xp, 'expected_level', expected_level)),
    ('LEDGER_MISMATCH', has_progress AND total_xp <> ledger_xp,
      jsonb_build_object('total_xp', total_xp, 'ledger_xp', ledger_xp))
  ) AS k (kind, found, details)
  WHERE k.found
$$;

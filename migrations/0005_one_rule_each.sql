-- Each rule written once, where every query can use it, and apply_xp answers
-- with named outcomes instead of HTTP status numbers.

-- ISO 8601 in UTC with milliseconds, as JavaScript's toISOString() writes it,
-- whatever the session's time zone. SQL and STABLE, so the planner inlines it.
CREATE FUNCTION iso_utc(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The level rule: level = the highest level whose threshold the XP reaches.
-- Per specialization, thresholds ascending and the level each one reaches, so
-- a row's level is reached[width_bucket(xp, thresholds)]: one array lookup,
-- which a scan of millions of pairs can afford per row.
CREATE VIEW level_scale AS
SELECT specialization_id,
       array_agg(xp_threshold ORDER BY xp_threshold) AS thresholds,
       array_agg(reached ORDER BY xp_threshold) AS reached
FROM (
  SELECT specialization_id, xp_threshold,
         max(level) OVER (PARTITION BY specialization_id ORDER BY xp_threshold) AS reached
  FROM specialization_levels
) s
GROUP BY specialization_id;

-- The lookup on a scale (inlined by the planner: no table access of its own).
CREATE FUNCTION level_on_scale(thresholds bigint[], reached integer[], xp bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT reached[width_bucket(xp, thresholds)]
$$;

-- level_for_xp keeps its signature (the enforcer and tests call it) and now
-- uses the same scale as the scan and repair.
CREATE OR REPLACE FUNCTION level_for_xp(p_specialization text, p_xp bigint) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT level_on_scale(thresholds, reached, p_xp) FROM level_scale WHERE specialization_id = p_specialization
$$;

-- The XP the ledger accounts for, per pair. Every delta is a non-negative
-- integer and total_xp is at most 2^53-1, so summing in float8 is exact
-- whenever the sum could equal total_xp (bigint's sum() is numeric, several
-- times slower on millions of rows). Filters on the pair columns are pushed
-- into the grouping.
CREATE VIEW ledger_totals AS
SELECT student_id, specialization_id, sum((xp_after - xp_before)::float8) AS xp
FROM xp_events
GROUP BY student_id, specialization_id;

-- "The latest successful full check": what the status, the violations list
-- and the metrics' latest figures are read from (one index probe, 0004).
CREATE VIEW latest_full_check AS
SELECT * FROM integrity_checks
WHERE outcome = 'success' AND scope_user_id IS NULL
ORDER BY id DESC
LIMIT 1;

-- Idempotency keys remember the outcome by name.
ALTER TABLE idempotency_keys ADD COLUMN outcome text
  CHECK (outcome IN ('applied', 'unknown_student'));
UPDATE idempotency_keys
SET outcome = CASE status_code WHEN 200 THEN 'applied' WHEN 404 THEN 'unknown_student' END;
ALTER TABLE idempotency_keys DROP COLUMN status_code;

-- apply_xp answers what happened, never an HTTP status:
--   applied          the change is written; body is the new state (JSON text)
--   replayed         the key's first result; body as it was first returned
--   unknown_student  not an active student (also when replayed under its key)
--   key_conflict     the key was used before for another request
--   actor_inactive   the caller's account is gone, inactive or not staff
--   expired          it ran after p_deadline (it waited for a connection while the
--                    database was unreachable, and the caller was already answered)
-- One statement, so one transaction: progress, license, ledger and key are
-- written together or not at all.
DROP FUNCTION apply_xp(integer, text, bigint, integer, text, text);
CREATE FUNCTION apply_xp(
  p_student integer,
  p_spec text,
  p_xp bigint,
  p_actor integer,
  p_request_id text,
  p_key text,
  p_deadline timestamptz,
  OUT outcome text,
  OUT body text
)
LANGUAGE plpgsql AS $$
DECLARE
  -- total_xp's CHECK: 2^53-1, exact in JSON.
  max_xp constant bigint := 9007199254740991;
  v_request text := concat_ws('|', p_student, p_spec, p_xp);
  v_stored idempotency_keys%ROWTYPE;
  v_is_student boolean;
  v_progress_id bigint;
  v_before_xp bigint;
  v_before_level integer;
  v_after_xp bigint;
  v_after_level integer;
  v_max_level integer;
  v_event_id bigint;
  v_at text := iso_utc(now());
BEGIN
  IF p_deadline IS NOT NULL AND clock_timestamp() > p_deadline THEN
    outcome := 'expired';
    RETURN;
  END IF;
  IF p_xp IS NULL OR p_xp <= 0 THEN
    RAISE EXCEPTION 'xp_change must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- Tokens outlive accounts: a deleted or deactivated caller awards nothing.
  PERFORM 1 FROM users WHERE id = p_actor AND is_active AND role IN ('ADMIN', 'INSTRUCTOR');
  IF NOT FOUND THEN
    outcome := 'actor_inactive';
    RETURN;
  END IF;

  IF p_key IS NOT NULL THEN
    -- A concurrent request with the same key blocks here until the first
    -- commits (then finds its result) or rolls back (then proceeds itself).
    INSERT INTO idempotency_keys (actor_id, key, request)
    VALUES (p_actor, p_key, v_request) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT * INTO v_stored FROM idempotency_keys k WHERE k.actor_id = p_actor AND k.key = p_key;
      IF v_stored.request <> v_request THEN
        outcome := 'key_conflict';
      ELSIF v_stored.outcome = 'applied' THEN
        outcome := 'replayed';
        body := v_stored.response;
      ELSE
        outcome := v_stored.outcome;
      END IF;
      RETURN;
    END IF;
  END IF;

  -- Only active students earn XP; anyone else looks like an unknown id.
  SELECT u.role = 'STUDENT' AND u.is_active INTO v_is_student FROM users u WHERE u.id = p_student;
  IF v_is_student IS NOT TRUE THEN
    outcome := 'unknown_student';
    IF p_key IS NOT NULL THEN
      UPDATE idempotency_keys SET outcome = 'unknown_student' WHERE actor_id = p_actor AND key = p_key;
    END IF;
    RETURN;
  END IF;

  -- Lock the progress row first. The first XP enrols: the insert waits for a
  -- concurrent enrolment of the same pair and then does nothing, so the pair
  -- is created exactly once, and the next pass locks whichever row exists.
  FOR attempt IN 1..3 LOOP
    SELECT p.id, p.total_xp, p.current_level INTO v_progress_id, v_before_xp, v_before_level
    FROM specialization_progress p
    WHERE p.student_id = p_student AND p.specialization_id = p_spec
    FOR UPDATE;
    EXIT WHEN FOUND;
    INSERT INTO specialization_progress (student_id, specialization_id)
    VALUES (p_student, p_spec) ON CONFLICT (student_id, specialization_id) DO NOTHING;
  END LOOP;
  IF v_progress_id IS NULL THEN
    -- Only under a snapshot isolation level can the row stay invisible: let the caller retry.
    RAISE EXCEPTION 'could not lock the progress row' USING ERRCODE = 'serialization_failure';
  END IF;

  -- Saturate instead of overflowing; the scale ends at max_levels.
  v_after_xp := v_before_xp + least(p_xp, max_xp - v_before_xp);
  v_after_level := level_for_xp(p_spec, v_after_xp);

  UPDATE specialization_progress
  SET total_xp = v_after_xp, current_level = v_after_level, updated_at = now()
  WHERE id = v_progress_id;

  -- Then the license: the same level and a maximum that never decreases;
  -- created with the enrolment (or again, if something removed it).
  UPDATE user_licenses l
  SET current_level = v_after_level,
      max_achieved_level = greatest(l.max_achieved_level, v_after_level),
      updated_at = now()
  WHERE l.user_id = p_student AND l.specialization_type = p_spec
  RETURNING l.max_achieved_level INTO v_max_level;
  IF NOT FOUND THEN
    INSERT INTO user_licenses AS l (user_id, specialization_type, current_level, max_achieved_level)
    VALUES (p_student, p_spec, v_after_level, v_after_level)
    ON CONFLICT (user_id, specialization_type) DO UPDATE
    SET current_level = excluded.current_level,
        max_achieved_level = greatest(l.max_achieved_level, excluded.current_level),
        updated_at = now()
    RETURNING l.max_achieved_level INTO v_max_level;
  END IF;

  INSERT INTO xp_events (student_id, specialization_id, xp_change, xp_before, xp_after,
                         level_before, level_after, actor_id, source, request_id, idempotency_key)
  VALUES (p_student, p_spec, p_xp, v_before_xp, v_after_xp,
          v_before_level, v_after_level, p_actor, 'api', p_request_id, p_key)
  RETURNING id INTO v_event_id;

  -- The response body in its documented key order (json keeps it, jsonb would
  -- not): the server forwards it without decoding and re-encoding.
  body := json_build_object(
    'student_id', p_student,
    'specialization_id', p_spec,
    'xp_change', p_xp,
    'xp_applied', v_after_xp - v_before_xp,
    'previous_level', v_before_level,
    'leveled_up', v_after_level > v_before_level,
    'event_id', v_event_id,
    'progress', json_build_object(
      'current_level', v_after_level,
      'total_xp', v_after_xp,
      'updated_at', v_at),
    'license', json_build_object(
      'current_level', v_after_level,
      'max_achieved_level', v_max_level,
      'updated_at', v_at))::text;
  outcome := 'applied';

  IF p_key IS NOT NULL THEN
    UPDATE idempotency_keys SET outcome = 'applied', response = body WHERE actor_id = p_actor AND key = p_key;
  END IF;
END
$$;

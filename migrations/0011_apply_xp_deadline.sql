-- 0005_one_rule_each.sql was edited after it had landed: apply_xp gained
-- p_deadline (an award that waited out a database outage does nothing, the
-- caller having been answered already). A database that applied 0005 as it
-- first landed (lib/migrate.ts accepts that version's checksum) still has the
-- six-argument apply_xp: it is replaced here by the current one. On any other
-- database this redefines apply_xp exactly as it already is.
DROP FUNCTION IF EXISTS apply_xp(integer, text, bigint, integer, text, text);

CREATE OR REPLACE FUNCTION apply_xp(
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

-- Coupling enforcer: idempotency keys and one server-side function that applies
-- an XP change in a single round trip, holding the same row locks a
-- multi-statement transaction would (progress first, then license).

-- The first result per (actor, key), written in the same transaction as the
-- change itself: a key is recorded if and only if its outcome is final.
-- Kept 48 h (pruned hourly, see main.ts), so at least the promised 24 h.
CREATE TABLE idempotency_keys (
  actor_id integer NOT NULL REFERENCES users (id),
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  -- What was asked ("student|specialization|xp_change"); another request under
  -- the same key is refused (422) instead of replayed.
  request text NOT NULL,
  status_code integer,
  -- The JSON body of a 200, replayed byte for byte.
  response text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (actor_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Applies one XP change and returns (status, body, replayed):
--   200, JSON, false   applied now          200, JSON, true   replay of the key's first result
--   404, NULL, *       not an active student (replayed as 404 too)
--   422, NULL, false   key used before for another request
--   401, NULL, false   the caller's account is gone, inactive or not staff
-- One statement, so one transaction: progress, license, ledger and key are
-- written together or not at all.
CREATE FUNCTION apply_xp(
  p_student integer,
  p_spec text,
  p_xp bigint,
  p_actor integer,
  p_request_id text,
  p_key text,
  OUT status integer,
  OUT body text,
  OUT replayed boolean
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
  -- Timestamps as JavaScript's toISOString() writes them, whatever the session time zone.
  v_at text := to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
BEGIN
  replayed := false;
  IF p_xp IS NULL OR p_xp <= 0 THEN
    RAISE EXCEPTION 'xp_change must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- Tokens outlive accounts: a deleted or deactivated caller awards nothing.
  PERFORM 1 FROM users WHERE id = p_actor AND is_active AND role IN ('ADMIN', 'INSTRUCTOR');
  IF NOT FOUND THEN
    status := 401;
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
        status := 422;
      ELSE
        status := v_stored.status_code;
        body := v_stored.response;
        replayed := true;
      END IF;
      RETURN;
    END IF;
  END IF;

  -- Only active students earn XP; anyone else looks like an unknown id.
  SELECT u.role = 'STUDENT' AND u.is_active INTO v_is_student FROM users u WHERE u.id = p_student;
  IF v_is_student IS NOT TRUE THEN
    status := 404;
    IF p_key IS NOT NULL THEN
      UPDATE idempotency_keys SET status_code = 404 WHERE actor_id = p_actor AND key = p_key;
    END IF;
    RETURN;
  END IF;

  -- Lock the progress row first. The first XP enrols: the insert waits for a
  -- concurrent enrolment of the same pair and then does nothing, so the pair
  -- is created exactly once, and the next pass locks whichever row exists.
  -- (Trying the lock first spares the common case an insert attempt.)
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

  -- Saturate instead of overflowing; the thresholds end at max_levels.
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
  status := 200;

  IF p_key IS NOT NULL THEN
    UPDATE idempotency_keys SET status_code = 200, response = body WHERE actor_id = p_actor AND key = p_key;
  END IF;
END
$$;

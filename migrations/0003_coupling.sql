-- Coupling enforcer: idempotency keys and one server-side function that applies
-- an XP change in a single round trip, holding the same row locks a
-- multi-statement transaction would (progress first, then license).

CREATE TABLE idempotency_keys (
  actor_id integer NOT NULL REFERENCES users (id),
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_hash text NOT NULL,
  status_code integer,
  response jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (actor_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Returns {"outcome": "applied" | "replay" | "not_found" | "key_reused" | "actor_inactive", ...}.
-- Runs as one statement, so it commits or rolls back as a whole.
CREATE FUNCTION apply_xp(
  p_student integer,
  p_spec text,
  p_xp bigint,
  p_actor integer,
  p_request_id text,
  p_key text
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  max_xp constant bigint := 9007199254740991;
  v_hash text := md5(concat_ws('|', p_student, p_spec, p_xp));
  v_stored idempotency_keys%ROWTYPE;
  v_role text;
  v_active boolean;
  v_before_xp bigint;
  v_before_level integer;
  v_after_xp bigint;
  v_after_level integer;
  v_progress specialization_progress%ROWTYPE;
  v_license user_licenses%ROWTYPE;
  v_event_id bigint;
  v_result jsonb;
BEGIN
  IF p_xp IS NULL OR p_xp <= 0 THEN
    RAISE EXCEPTION 'xp_change must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- Tokens outlive accounts: a deleted or deactivated caller awards nothing.
  PERFORM 1 FROM users WHERE id = p_actor AND is_active AND role IN ('ADMIN', 'INSTRUCTOR');
  IF NOT FOUND THEN
    RETURN jsonb_build_object('outcome', 'actor_inactive');
  END IF;

  IF p_key IS NOT NULL THEN
    -- A concurrent request with the same key blocks here until it commits,
    -- then finds its stored result.
    INSERT INTO idempotency_keys (actor_id, key, request_hash)
    VALUES (p_actor, p_key, v_hash) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT * INTO v_stored FROM idempotency_keys WHERE actor_id = p_actor AND key = p_key;
      IF v_stored.request_hash <> v_hash THEN
        RETURN jsonb_build_object('outcome', 'key_reused');
      END IF;
      RETURN jsonb_build_object('outcome', 'replay', 'status', v_stored.status_code, 'response', v_stored.response);
    END IF;
  END IF;

  -- Only active students earn XP; anyone else looks like an unknown id.
  SELECT role, is_active INTO v_role, v_active FROM users WHERE id = p_student;
  IF v_role IS DISTINCT FROM 'STUDENT' OR NOT v_active THEN
    v_result := jsonb_build_object('outcome', 'not_found');
    IF p_key IS NOT NULL THEN
      UPDATE idempotency_keys SET status_code = 404, response = v_result WHERE actor_id = p_actor AND key = p_key;
    END IF;
    RETURN v_result;
  END IF;

  -- First XP enrols: the progress row appears (or we wait for the concurrent
  -- enrolment to commit), then we lock it. Lock order: progress, then license.
  INSERT INTO specialization_progress (student_id, specialization_id)
  VALUES (p_student, p_spec) ON CONFLICT DO NOTHING;
  SELECT total_xp, current_level INTO v_before_xp, v_before_level
  FROM specialization_progress WHERE student_id = p_student AND specialization_id = p_spec
  FOR UPDATE;

  v_after_xp := least(v_before_xp + least(p_xp, max_xp), max_xp);
  v_after_level := level_for_xp(p_spec, v_after_xp);

  UPDATE specialization_progress
  SET total_xp = v_after_xp, current_level = v_after_level, updated_at = now()
  WHERE student_id = p_student AND specialization_id = p_spec
  RETURNING * INTO v_progress;

  INSERT INTO user_licenses AS l (user_id, specialization_type, current_level, max_achieved_level)
  VALUES (p_student, p_spec, v_after_level, v_after_level)
  ON CONFLICT (user_id, specialization_type) DO UPDATE
  SET current_level = excluded.current_level,
      max_achieved_level = greatest(l.max_achieved_level, excluded.current_level),
      updated_at = now()
  RETURNING * INTO v_license;

  INSERT INTO xp_events (student_id, specialization_id, xp_change, xp_before, xp_after,
                         level_before, level_after, actor_id, source, request_id, idempotency_key)
  VALUES (p_student, p_spec, p_xp, v_before_xp, v_after_xp,
          v_before_level, v_after_level, p_actor, 'api', p_request_id, p_key)
  RETURNING id INTO v_event_id;

  v_result := jsonb_build_object(
    'student_id', p_student,
    'specialization_id', p_spec,
    'xp_change', p_xp,
    'xp_applied', v_after_xp - v_before_xp,
    'previous_level', v_before_level,
    'leveled_up', v_after_level > v_before_level,
    'event_id', v_event_id,
    'progress', jsonb_build_object(
      'current_level', v_progress.current_level,
      'total_xp', v_progress.total_xp,
      'updated_at', v_progress.updated_at),
    'license', jsonb_build_object(
      'current_level', v_license.current_level,
      'max_achieved_level', v_license.max_achieved_level,
      'updated_at', v_license.updated_at));

  IF p_key IS NOT NULL THEN
    UPDATE idempotency_keys SET status_code = 200, response = v_result WHERE actor_id = p_actor AND key = p_key;
  END IF;
  RETURN jsonb_build_object('outcome', 'applied', 'status', 200, 'response', v_result);
END
$$;

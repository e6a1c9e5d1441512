-- Group commit for awards (lib/award_batcher.ts): the awards that arrive
-- while others are in flight are sent together, as one call of
-- apply_xp_batch, in one transaction and one round trip. Each item is answered
-- exactly as apply_xp (0011) would answer it alone: its own outcome
-- ('applied', 'replayed', 'unknown_student', 'key_conflict', 'actor_inactive',
-- 'expired'), its own ledger row and body, its own Idempotency-Key and
-- deadline. An item that raises (an xp_change that is not positive, a failed
-- statement) fails the whole call: the server then applies the items one by
-- one with apply_xp, so the failure stays with its item. (A savepoint per item
-- instead would cost every batch: measured in a batch of 10, PostgreSQL CPU per
-- award went from ~155 to ~320 us with per-item subtransactions.)
--
-- Locks, in the same order by every writer, so no two batches, nor a batch and
-- a single apply_xp, nor a batch and a repair (lib/integrity/repair.ts) can
-- wait on each other in a circle:
--   1. idempotency keys, in (actor, key) order (apply_xp claims its one key
--      before any row lock);
--   2. enrolments of pairs that have no progress row yet, in (student,
--      specialization) order, only for pairs no committed row exists for (so an
--      enrolment waits only on another enrolment of the same pair, never on a
--      row someone is updating);
--   3. the progress rows, in id order, as a repair takes them;
--   4. then the licenses of those pairs (held only by whoever holds the pair's
--      progress row) and the new ledger rows.
-- The writes are computed for the whole batch and made with one statement per
-- table (per-item statements cost ~2.5 times as much PostgreSQL CPU per award).
-- Two items of one pair are applied one after the other, in arrival order: the
-- second starts from the first's total, each has its own ledger row. Two items
-- with one key: the first claims it, the later ones are answered from what it
-- recorded (replayed, or key_conflict for another body), as a second request
-- waiting on the first's commit is today.
CREATE FUNCTION apply_xp_batch(p_items json)
RETURNS TABLE (i integer, outcome text, body text)
LANGUAGE plpgsql
-- Every statement below is planned once per session: the custom plans PostgreSQL would otherwise
-- make for the first calls and keep making (their arrays look cheaper than a generic plan's)
-- doubled the cost of a call (measured with per-item statements: 538 -> 275 us for one item,
-- 1,468 -> 1,110 us for six).
-- The generic plans are the same index lookups.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  -- total_xp's CHECK: 2^53-1, exact in JSON.
  max_xp constant bigint := 9007199254740991;
  v_now timestamptz := clock_timestamp();
  v_at text := iso_utc(now());
  v_n integer;
  v_student integer[];
  v_spec text[];
  v_xp bigint[];
  v_actor integer[];
  v_request_id text[];
  v_key text[];
  v_deadline timestamptz[];
  v_outcome text[];
  v_body text[];
  -- A later item whose key an earlier item of this batch claimed: answered at the end.
  v_follower boolean[];
  v_staff integer[];
  v_students integer[];
  v_leaders integer[];
  v_stored idempotency_keys%ROWTYPE;
  -- The awards to apply, in application order (pair, then arrival): their k and what they do.
  v_m integer;
  v_ord integer[];
  v_progress bigint[];
  v_before bigint[];
  v_after bigint[];
  v_level_before integer[];
  v_level_after integer[];
  v_max integer[];
  v_last boolean[];
  v_unlicensed boolean;
  v_event bigint[];
  v_bodies text[];
  k integer;
  n integer;
BEGIN
  SELECT coalesce(array_agg(t.student_id ORDER BY t.k), '{}'),
         coalesce(array_agg(t.specialization_id ORDER BY t.k), '{}'),
         coalesce(array_agg(t.xp_change ORDER BY t.k), '{}'),
         coalesce(array_agg(t.actor_id ORDER BY t.k), '{}'),
         coalesce(array_agg(t.request_id ORDER BY t.k), '{}'),
         coalesce(array_agg(t.key ORDER BY t.k), '{}'),
         coalesce(array_agg(t.deadline ORDER BY t.k), '{}')
  INTO v_student, v_spec, v_xp, v_actor, v_request_id, v_key, v_deadline
  FROM ROWS FROM (json_to_recordset(p_items) AS (
    student_id integer, specialization_id text, xp_change bigint, actor_id integer,
    request_id text, key text, deadline timestamptz
  )) WITH ORDINALITY AS t(student_id, specialization_id, xp_change, actor_id, request_id, key, deadline, k);
  v_n := coalesce(array_length(v_student, 1), 0);
  v_outcome := array_fill(NULL::text, ARRAY[v_n]);
  v_body := array_fill(NULL::text, ARRAY[v_n]);
  v_follower := array_fill(false, ARRAY[v_n]);

  -- What apply_xp decides before it claims a key: the deadline, the amount, the actor.
  SELECT coalesce(array_agg(u.id), '{}') INTO v_staff FROM users u
  WHERE u.id = ANY(v_actor) AND u.is_active AND u.role IN ('ADMIN', 'INSTRUCTOR');
  FOR k IN 1..v_n LOOP
    IF v_deadline[k] IS NOT NULL AND v_now > v_deadline[k] THEN
      v_outcome[k] := 'expired';
    ELSIF v_xp[k] IS NULL OR v_xp[k] <= 0 THEN
      RAISE EXCEPTION 'xp_change must be positive' USING ERRCODE = 'invalid_parameter_value';
    ELSIF (v_actor[k] = ANY(v_staff)) IS NOT TRUE THEN
      v_outcome[k] := 'actor_inactive';
    END IF;
  END LOOP;

  -- 1. Keys, in (actor, key) order; the first item of each key claims it.
  WITH pending AS (
    SELECT g.k, v_actor[g.k] AS actor_id, v_key[g.k] AS key,
           concat_ws('|', v_student[g.k], v_spec[g.k], v_xp[g.k]) AS request
    FROM generate_series(1, v_n) AS g(k)
    WHERE v_key[g.k] IS NOT NULL AND v_outcome[g.k] IS NULL
  ), firsts AS (
    SELECT DISTINCT ON (p.actor_id, p.key) p.k, p.actor_id, p.key, p.request
    FROM pending p ORDER BY p.actor_id, p.key, p.k
  ), claimed AS (
    INSERT INTO idempotency_keys (actor_id, key, request)
    SELECT f.actor_id, f.key, f.request FROM firsts f ORDER BY f.actor_id, f.key
    ON CONFLICT DO NOTHING
    RETURNING idempotency_keys.actor_id, idempotency_keys.key
  )
  SELECT coalesce(array_agg(f.k), '{}') INTO v_leaders
  FROM firsts f JOIN claimed c ON c.actor_id = f.actor_id AND c.key = f.key;

  FOR k IN 1..v_n LOOP
    CONTINUE WHEN v_key[k] IS NULL OR v_outcome[k] IS NOT NULL OR k = ANY(v_leaders);
    IF EXISTS (SELECT 1 FROM unnest(v_leaders) AS l(j) WHERE v_actor[l.j] = v_actor[k] AND v_key[l.j] = v_key[k]) THEN
      v_follower[k] := true;
    ELSE
      -- Claimed before this batch: answered from what was recorded, as apply_xp does.
      SELECT * INTO v_stored FROM idempotency_keys ik WHERE ik.actor_id = v_actor[k] AND ik.key = v_key[k];
      IF v_stored.request <> concat_ws('|', v_student[k], v_spec[k], v_xp[k]) THEN
        v_outcome[k] := 'key_conflict';
      ELSIF v_stored.outcome = 'applied' THEN
        v_outcome[k] := 'replayed';
        v_body[k] := v_stored.response;
      ELSE
        v_outcome[k] := v_stored.outcome;
      END IF;
    END IF;
  END LOOP;

  -- Only active students earn XP; anyone else looks like an unknown id.
  SELECT coalesce(array_agg(u.id), '{}') INTO v_students FROM users u
  WHERE u.id = ANY(v_student) AND u.role = 'STUDENT' AND u.is_active;
  FOR k IN 1..v_n LOOP
    CONTINUE WHEN v_outcome[k] IS NOT NULL OR v_follower[k];
    IF (v_student[k] = ANY(v_students)) IS NOT TRUE THEN
      v_outcome[k] := 'unknown_student';
      IF v_key[k] IS NOT NULL THEN
        UPDATE idempotency_keys SET outcome = 'unknown_student' WHERE actor_id = v_actor[k] AND key = v_key[k];
      END IF;
    END IF;
  END LOOP;

  -- 2. Enrolments of the pairs without a (committed) progress row, in pair order.
  INSERT INTO specialization_progress (student_id, specialization_id)
  SELECT DISTINCT v_student[g.k], v_spec[g.k]
  FROM generate_series(1, v_n) AS g(k)
  WHERE v_outcome[g.k] IS NULL AND NOT v_follower[g.k]
    AND NOT EXISTS (
      SELECT 1 FROM specialization_progress p
      WHERE p.student_id = v_student[g.k] AND p.specialization_id = v_spec[g.k])
  ORDER BY 1, 2
  ON CONFLICT (student_id, specialization_id) DO NOTHING;

  -- 3. The progress rows, in id order.
  PERFORM 1 FROM specialization_progress p
  WHERE (p.student_id, p.specialization_id) IN (
    SELECT v_student[g.k], v_spec[g.k] FROM generate_series(1, v_n) AS g(k)
    WHERE v_outcome[g.k] IS NULL AND NOT v_follower[g.k])
  ORDER BY p.id
  FOR UPDATE;

  -- 4. The awards, pair by pair in arrival order, each one as apply_xp writes it (saturating at
  -- max_xp, the level from the pair's scale), computed for the whole batch in one statement and
  -- written in one statement per table. v_ord (application order) -> the item's k.
  SELECT coalesce(array_agg(x.k ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(array_agg(x.progress_id ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(array_agg(x.xp_before ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(array_agg(x.xp_after ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(array_agg(x.level_before ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(array_agg(x.level_after ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(array_agg(x.max_level ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(array_agg(x.last ORDER BY x.student_id, x.spec, x.k), '{}'),
         coalesce(bool_or(x.last AND x.max0 IS NULL), false)
  INTO v_ord, v_progress, v_before, v_after, v_level_before, v_level_after, v_max, v_last, v_unlicensed
  FROM (
    SELECT l.*,
           coalesce(lag(l.xp_after) OVER w, l.xp0) AS xp_before,
           coalesce(lag(l.level_after) OVER w, l.level0) AS level_before,
           -- Levels only rise within a pair: the license's maximum after this award.
           greatest(coalesce(l.max0, 0), l.level_after) AS max_level,
           lead(l.k) OVER w IS NULL AS last
    FROM (
      SELECT r.*, level_on_scale(sc.thresholds, sc.reached, r.xp_after) AS level_after
      FROM (
        SELECT a.k, a.student_id, a.spec, p.id AS progress_id, p.total_xp AS xp0, p.current_level AS level0,
               lic.max_achieved_level AS max0,
               least(p.total_xp + sum(a.xp::numeric) OVER (PARTITION BY a.student_id, a.spec ORDER BY a.k),
                     max_xp)::bigint AS xp_after
        FROM (
          SELECT g.k, v_student[g.k] AS student_id, v_spec[g.k] AS spec, v_xp[g.k] AS xp
          FROM generate_series(1, v_n) AS g(k)
          WHERE v_outcome[g.k] IS NULL AND NOT v_follower[g.k]
        ) a
        LEFT JOIN specialization_progress p ON p.student_id = a.student_id AND p.specialization_id = a.spec
        LEFT JOIN user_licenses lic ON lic.user_id = a.student_id AND lic.specialization_type = a.spec
      ) r
      LEFT JOIN level_scale sc ON sc.specialization_id = r.spec
    ) l
    WINDOW w AS (PARTITION BY l.student_id, l.spec ORDER BY l.k)
  ) x;
  v_m := coalesce(array_length(v_ord, 1), 0);
  IF array_position(v_progress, NULL) IS NOT NULL THEN
    -- Only under a snapshot isolation level can a row stay invisible: let the caller retry.
    RAISE EXCEPTION 'could not lock the progress row' USING ERRCODE = 'serialization_failure';
  END IF;

  IF v_m > 0 THEN
    -- The pair's last award says where it ends: one write per progress row and license.
    UPDATE specialization_progress p
    SET total_xp = f.xp_after, current_level = f.level_after, updated_at = now()
    FROM unnest(v_progress, v_after, v_level_after, v_last) AS f(progress_id, xp_after, level_after, last)
    WHERE f.last AND p.id = f.progress_id;

    UPDATE user_licenses l
    SET current_level = f.level_after,
        max_achieved_level = greatest(l.max_achieved_level, f.level_after),
        updated_at = now()
    FROM unnest(v_ord, v_level_after, v_last) AS f(k, level_after, last)
    WHERE f.last AND l.user_id = v_student[f.k] AND l.specialization_type = v_spec[f.k];
    -- Created with the enrolment (or again, if something removed it).
    IF v_unlicensed THEN
      INSERT INTO user_licenses AS l (user_id, specialization_type, current_level, max_achieved_level)
      SELECT v_student[f.k], v_spec[f.k], f.level_after, f.level_after
      FROM unnest(v_ord, v_level_after, v_last) AS f(k, level_after, last)
      WHERE f.last AND NOT EXISTS (
        SELECT 1 FROM user_licenses e WHERE e.user_id = v_student[f.k] AND e.specialization_type = v_spec[f.k])
      ORDER BY 1, 2
      ON CONFLICT (user_id, specialization_type) DO UPDATE
      SET current_level = excluded.current_level,
          max_achieved_level = greatest(l.max_achieved_level, excluded.current_level),
          updated_at = now();
    END IF;

    -- Ledger ids taken in application order, so the ledger reads in the order the awards applied.
    SELECT array_agg(nextval('xp_events_id_seq') ORDER BY g.n) INTO v_event
    FROM generate_series(1, v_m) AS g(n);
    INSERT INTO xp_events (id, student_id, specialization_id, xp_change, xp_before, xp_after,
                           level_before, level_after, actor_id, source, request_id, idempotency_key)
    OVERRIDING SYSTEM VALUE
    SELECT v_event[f.n], v_student[f.k], v_spec[f.k], v_xp[f.k], v_before[f.n], v_after[f.n],
           v_level_before[f.n], v_level_after[f.n], v_actor[f.k], 'api', v_request_id[f.k], v_key[f.k]
    FROM unnest(v_ord) WITH ORDINALITY AS f(k, n)
    ORDER BY f.n;

    -- The response bodies in their documented key order (json keeps it, jsonb would not).
    SELECT array_agg(json_build_object(
      'student_id', v_student[f.k],
      'specialization_id', v_spec[f.k],
      'xp_change', v_xp[f.k],
      'xp_applied', v_after[f.n] - v_before[f.n],
      'previous_level', v_level_before[f.n],
      'leveled_up', v_level_after[f.n] > v_level_before[f.n],
      'event_id', v_event[f.n],
      'progress', json_build_object(
        'current_level', v_level_after[f.n],
        'total_xp', v_after[f.n],
        'updated_at', v_at),
      'license', json_build_object(
        'current_level', v_level_after[f.n],
        'max_achieved_level', v_max[f.n],
        'updated_at', v_at))::text ORDER BY f.n)
    INTO v_bodies
    FROM unnest(v_ord) WITH ORDINALITY AS f(k, n);
    FOR n IN 1..v_m LOOP
      v_outcome[v_ord[n]] := 'applied';
      v_body[v_ord[n]] := v_bodies[n];
    END LOOP;

    UPDATE idempotency_keys ik SET outcome = 'applied', response = v_bodies[f.n]
    FROM unnest(v_ord) WITH ORDINALITY AS f(k, n)
    WHERE v_key[f.k] IS NOT NULL AND ik.actor_id = v_actor[f.k] AND ik.key = v_key[f.k];
  END IF;

  -- The later items of a key this batch claimed: answered from what its first item recorded.
  FOR k IN 1..v_n LOOP
    CONTINUE WHEN NOT v_follower[k];
    SELECT * INTO v_stored FROM idempotency_keys ik WHERE ik.actor_id = v_actor[k] AND ik.key = v_key[k];
    IF v_stored.request <> concat_ws('|', v_student[k], v_spec[k], v_xp[k]) THEN
      v_outcome[k] := 'key_conflict';
    ELSIF v_stored.outcome = 'applied' THEN
      v_outcome[k] := 'replayed';
      v_body[k] := v_stored.response;
    ELSE
      v_outcome[k] := v_stored.outcome;
    END IF;
  END LOOP;

  FOR k IN 1..v_n LOOP
    i := k - 1;
    outcome := v_outcome[k];
    body := v_body[k];
    RETURN NEXT;
  END LOOP;
END
$$;

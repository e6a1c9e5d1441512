/** The hourly housekeeping: what has expired goes, what has not stays, and one instance at a time does it. */
import { assert, assertEquals } from "./_assert.ts";
import { PRUNE_LOCK_KEY, pruneExpired } from "../lib/prune.ts";
import { withTestApp } from "./_fixture.ts";
import { addStudents, ADMIN_ID } from "./_students.ts";

Deno.test("housekeeping deletes expired keys, sessions, request figures and ended sign-in streaks, and keeps the rest", () =>
  withTestApp(async ({ db }) => {
    await addStudents(db, 1);
    await db.sql`INSERT INTO idempotency_keys (actor_id, key, request, outcome, response, created_at)
      SELECT ${ADMIN_ID}, k, '1|PLAYER|10', 'applied', '{}', now() - make_interval(hours => h)
      FROM (VALUES ('old', 72), ('fresh', 1)) AS v (k, h)`;
    await db.sql`INSERT INTO admin_sessions (token_hash, user_id, csrf_token, expires_at) VALUES
      ('gone', ${ADMIN_ID}, 'c', now() - interval '1 hour'), ('live', ${ADMIN_ID}, 'c', now() + interval '1 hour')`;
    await db
      .sql`INSERT INTO request_stats (minute, instance, cohort, requests, errors, latency_buckets) VALUES
      (date_trunc('minute', now() - interval '8 days'), 'a', 'other', 1, 0, '{1,0,0,0,0,0,0,0,0,0,0}'),
      (date_trunc('minute', now()), 'a', 'other', 1, 0, '{1,0,0,0,0,0,0,0,0,0,0}')`;
    // A streak that ended 20 minutes ago goes; a current one and a refusal still running stay.
    await db.sql`INSERT INTO login_failures (account, failures, last_failed_at, blocked_until) VALUES
      (login_account_key('ended@x.test'), 3, now() - interval '20 minutes', NULL),
      (login_account_key('current@x.test'), 7, now() - interval '1 minute', now() + interval '10 seconds'),
      (login_account_key('held@x.test'), 9, now() - interval '20 minutes', now() + interval '10 seconds')`;
    assertEquals(await pruneExpired(db.sql), {
      idempotency_keys: 1,
      sessions: 1,
      request_stats: 1,
      login_failures: 1,
    });
    const left = await db.sql`
      SELECT (SELECT count(*)::int FROM idempotency_keys) AS keys, (SELECT count(*)::int FROM admin_sessions) AS sessions,
        (SELECT count(*)::int FROM request_stats) AS stats, (SELECT count(*)::int FROM login_failures) AS failures`;
    assertEquals({ ...left[0] }, { keys: 1, sessions: 1, stats: 1, failures: 2 });
  }));

Deno.test("while another instance is pruning, this one skips the tick", () =>
  withTestApp(async ({ db }) => {
    const other = await db.connect(1).reserve();
    await other`BEGIN`;
    await other`SELECT pg_advisory_xact_lock(${PRUNE_LOCK_KEY})`;
    try {
      assertEquals(await pruneExpired(db.sql), null);
    } finally {
      await other`COMMIT`;
      other.release();
    }
    assert((await pruneExpired(db.sql)) !== null, "free again once the other is done");
  }));

import { assert, assertEquals } from "./_assert.ts";
import { SPECIALIZATION_IDS as SPECS } from "../lib/model.ts";
import { hasServer } from "./_db.ts";
import { award, until, withTestApp } from "./_fixture.ts";
import { desyncs } from "./_integrity.ts";
import { INSTRUCTOR_ID } from "./_students.ts";

Deno.test({
  name: "500 concurrent updates on 100 students never desync progress and license, and lose no XP",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 12, students: 100 }, async ({ app, db }) => {
    const requests = Array.from({ length: 500 }, (_, i) => ({
      student_id: 1 + (i * 37) % 100,
      specialization_id: SPECS[i % 3],
      xp_change: 1 + (i * 7919) % 900,
    }));
    const responses = await Promise.all(requests.map((body) => award(app, body)));
    assertEquals(responses.filter((r) => r.status !== 200).length, 0);
    await Promise.all(responses.map((r) => r.body?.cancel()));

    const acknowledged = new Map<string, number>();
    for (const r of requests) {
      const key = `${r.student_id}/${r.specialization_id}`;
      acknowledged.set(key, (acknowledged.get(key) ?? 0) + r.xp_change);
    }
    const rows = await db.sql<{ key: string; total_xp: number; ledger: number; events: number }[]>`
      SELECT p.student_id || '/' || p.specialization_id AS key, p.total_xp,
             sum(e.xp_after - e.xp_before)::bigint AS ledger, count(e.id)::int AS events
      FROM specialization_progress p
      JOIN xp_events e ON e.student_id = p.student_id AND e.specialization_id = p.specialization_id
      GROUP BY p.student_id, p.specialization_id, p.total_xp`;
    assertEquals(rows.length, acknowledged.size);
    for (const row of rows) {
      assertEquals(
        [row.total_xp, row.ledger],
        [acknowledged.get(row.key), acknowledged.get(row.key)],
        row.key,
      );
    }
    assertEquals(rows.reduce((s, r) => s + r.events, 0), 500);
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name:
    "500 concurrent awards through the group commit (3 lanes) share transactions, keep the ledger exact and never desync",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 3, students: 100 }, async ({ app, db }) => {
    // Every 10th award carries a key, sent twice: one applies, the other replays, wherever they land.
    const requests = Array.from({ length: 500 }, (_, i) => ({
      body: {
        student_id: 1 + (i * 37) % 100,
        specialization_id: SPECS[i % 3],
        xp_change: 1 + (i * 7919) % 900,
      },
      key: i % 10 === 0 ? `key-${i}` : undefined,
    }));
    const sent = [...requests, ...requests.filter((r) => r.key)];
    const responses = await Promise.all(
      sent.map((r) => award(app, r.body, r.key ? { "Idempotency-Key": r.key } : {})),
    );
    assertEquals(responses.filter((r) => r.status !== 200).length, 0);
    assertEquals(responses.filter((r) => r.headers.get("idempotent-replayed") === "true").length, 50);
    const events = new Set((await Promise.all(responses.map((r) => r.json()))).map((b) => b.event_id));
    assertEquals(events.size, 500, "one ledger row per award; a replay names its award's row");

    const acknowledged = new Map<string, number>();
    for (const { body } of requests) {
      const key = `${body.student_id}/${body.specialization_id}`;
      acknowledged.set(key, (acknowledged.get(key) ?? 0) + body.xp_change);
    }
    const rows = await db.sql<{ key: string; total_xp: number; ledger: number }[]>`
      SELECT p.student_id || '/' || p.specialization_id AS key, p.total_xp,
             sum(e.xp_after - e.xp_before)::bigint AS ledger
      FROM specialization_progress p
      JOIN xp_events e ON e.student_id = p.student_id AND e.specialization_id = p.specialization_id
      GROUP BY p.student_id, p.specialization_id, p.total_xp`;
    assertEquals(rows.length, acknowledged.size);
    for (const row of rows) {
      assertEquals(
        [row.total_xp, row.ledger],
        [acknowledged.get(row.key), acknowledged.get(row.key)],
        row.key,
      );
    }
    const [{ transactions }] = await db.sql<{ transactions: number }[]>`
      SELECT count(DISTINCT xmin::text)::int AS transactions FROM xp_events`;
    assert(transactions < 250, `awards were grouped (${transactions} transactions for 500)`);
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name: "50 concurrent first updates of one student enrol exactly once",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 12, students: 100 }, async ({ app, db }) => {
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        award(app, { student_id: 77, specialization_id: "COACH", xp_change: 10 })),
    );
    assertEquals(
      responses.map((r) =>
        r.status
      ),
      Array(50).fill(200),
    );
    await Promise.all(responses.map((r) => r.body?.cancel()));
    const [counts] = await db.sql`
      SELECT (SELECT count(*) FROM specialization_progress WHERE student_id = 77)::int AS progress,
             (SELECT count(*) FROM user_licenses WHERE user_id = 77)::int AS licenses,
             (SELECT total_xp FROM specialization_progress WHERE student_id = 77) AS xp`;
    assertEquals([counts.progress, counts.licenses, counts.xp], [1, 1, 500]);
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name: "concurrent requests with one Idempotency-Key apply once and all return the same result",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 12, students: 100 }, async ({ app, db }) => {
    const body = { student_id: 5, specialization_id: "PLAYER", xp_change: 120 };
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => award(app, body, { "Idempotency-Key": "same-key" })),
    );
    assertEquals(responses.map((r) => r.status), Array(20).fill(200));
    const bodies = await Promise.all(responses.map((r) => r.json()));
    assert(bodies.every((b) => JSON.stringify(b) === JSON.stringify(bodies[0])), "one result for all");
    assertEquals(responses.filter((r) => r.headers.get("idempotent-replayed") === "true").length, 19);
    const [{ total_xp }] = await db.sql`SELECT total_xp FROM specialization_progress WHERE student_id = 5`;
    assertEquals(total_xp, 120);
  }));

Deno.test({
  name: "a deadlock on the first attempt is retried and the change is applied exactly once",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 4, students: 100 }, async ({ app, db }) => {
    await award(app, { student_id: 9, specialization_id: "PLAYER", xp_change: 50 });
    const other = db.connect(1);
    // Another writer takes the locks in the wrong order (license, then progress).
    // Its deadlock_timeout is long, so PostgreSQL's detector fires on our side
    // first (default 1 s) and aborts the update with 40P01: it must retry.
    let otherFailed = true;
    const blocker = other.begin(async (tx) => {
      await tx`SET LOCAL deadlock_timeout = '10s'`;
      await tx`SELECT 1 FROM user_licenses WHERE user_id = 9 FOR UPDATE`;
      pending = award(app, { student_id: 9, specialization_id: "PLAYER", xp_change: 25 });
      // Wait until the update holds the progress row and waits for the license.
      await until("the update waits for the license", async () => {
        const [{ waiting }] = await db.sql`
          SELECT count(*)::int AS waiting FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE '%apply_xp%'`;
        return waiting > 0;
      });
      await tx`SELECT 1 FROM specialization_progress WHERE student_id = 9 FOR UPDATE`;
      otherFailed = false;
    }).catch(() => {});
    let pending: Promise<Response> | undefined;
    await blocker;
    const res = await pending!;
    assertEquals(res.status, 200);
    const [row] = await db.sql`
      SELECT total_xp, (SELECT count(*)::int FROM xp_events WHERE student_id = 9) AS events
      FROM specialization_progress WHERE student_id = 9`;
    assertEquals([row.total_xp, row.events], [75, 2]);
    // The other writer committed, so the aborted side was ours: a 200 means it was retried.
    assertEquals(otherFailed, false);
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name: "an award locks no row of its actor: with the instructor's account row locked, awards still complete",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 4, students: 100 }, async ({ app, db }) => {
    // An edit of the instructor's account in progress (FOR UPDATE: what an UPDATE of the row takes).
    const editing = await db.sql.reserve();
    await editing`BEGIN`;
    try {
      await editing`SELECT 1 FROM users WHERE id = ${INSTRUCTOR_ID} FOR UPDATE`;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const answered = await Promise.race([
        Promise.all([
          award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 10 }),
          award(app, { student_id: 2, specialization_id: "COACH", xp_change: 10 }, {
            "Idempotency-Key": "k-1",
          }),
        ]),
        new Promise<null>((r) => timer = setTimeout(() => r(null), 5000)),
      ]);
      clearTimeout(timer);
      assert(answered, "the awards waited for the actor's row lock");
      assertEquals(answered.map((r) => r.status), [200, 200]);
      await Promise.all(answered.map((r) => r.body?.cancel()));
    } finally {
      await editing`COMMIT`;
      editing.release();
    }
    const [{ n }] = await db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM xp_events WHERE actor_id = ${INSTRUCTOR_ID}`;
    assertEquals(n, 2, "the ledger names the actor");
  }));

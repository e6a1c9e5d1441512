import { assert, assertEquals } from "./_assert.ts";
import { pruneIdempotencyKeys } from "../lib/coupling.ts";
import type { ProgressUpdateResult } from "../routes/schemas.ts";
import { award, bearer, capturingStderr, PROGRESS_UPDATE_PATH as PATH, withTestApp } from "./_fixture.ts";
import { ADMIN_ID, INSTRUCTOR_ID } from "./_students.ts";

/** Students 1..5, an admin and an instructor. */
const FIVE_STUDENTS = { students: 5 };

Deno.test("the first XP enrols the student: progress and license created together, ledger row written", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    const res = await award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 150 });
    assertEquals(res.status, 200);
    const body: ProgressUpdateResult = await res.json();
    assertEquals(
      [
        body.student_id,
        body.specialization_id,
        body.xp_change,
        body.xp_applied,
        body.previous_level,
        body.leveled_up,
      ],
      [1, "PLAYER", 150, 150, 1, true],
    );
    assertEquals([body.progress.current_level, body.progress.total_xp], [2, 150]);
    assertEquals([body.license.current_level, body.license.max_achieved_level], [2, 2]);
    const [ledger] = await db.sql`
      SELECT xp_change, xp_before, xp_after, level_before, level_after, actor_id, source, request_id
      FROM xp_events WHERE id = ${body.event_id}`;
    assertEquals({ ...ledger }, {
      xp_change: 150,
      xp_before: 0,
      xp_after: 150,
      level_before: 1,
      level_after: 2,
      actor_id: INSTRUCTOR_ID,
      source: "api",
      request_id: res.headers.get("x-request-id"),
    });
  }));

Deno.test("levels follow each specialization's thresholds exactly at the boundaries", () =>
  withTestApp(FIVE_STUDENTS, async ({ app }) => {
    // PLAYER: 0,100,300,700,1500,3000,6000,12000 — walk 99, 100, 299, 300 ...
    const steps: [number, number, boolean][] = [[99, 1, false], [1, 2, true], [199, 2, false], [1, 3, true]];
    for (const [xp, level, up] of steps) {
      const body = await (await award(app, { student_id: 2, specialization_id: "PLAYER", xp_change: xp }))
        .json();
      assertEquals([body.progress.current_level, body.leveled_up], [level, up], `after +${xp}`);
    }
    const intern =
      await (await award(app, { student_id: 2, specialization_id: "INTERNSHIP", xp_change: 3499 })).json();
    assertEquals(intern.progress.current_level, 4);
    const top = await (await award(app, { student_id: 2, specialization_id: "INTERNSHIP", xp_change: 1 }))
      .json();
    assertEquals([top.progress.current_level, top.previous_level, top.leveled_up], [5, 4, true]);
  }));

Deno.test("a huge xp_change is accepted, the level caps at max_levels and total XP saturates at 2^53-1", () =>
  withTestApp(FIVE_STUDENTS, async ({ app }) => {
    const first =
      await (await award(app, { student_id: 3, specialization_id: "INTERNSHIP", xp_change: 9999999999 }))
        .json();
    assertEquals([first.progress.current_level, first.license.current_level, first.progress.total_xp], [
      5,
      5,
      9999999999,
    ]);
    const max = Number.MAX_SAFE_INTEGER;
    const big = await (await award(app, { student_id: 3, specialization_id: "INTERNSHIP", xp_change: max }))
      .json();
    assertEquals([big.progress.total_xp, big.xp_applied], [max, max - 9999999999]);
    const more = await (await award(app, { student_id: 3, specialization_id: "INTERNSHIP", xp_change: 5 }))
      .json();
    assertEquals([more.progress.total_xp, more.xp_applied, more.progress.current_level], [max, 0, 5]);
  }));

Deno.test("max_achieved_level never decreases, even when a desynced license is re-synced", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    await award(app, { student_id: 4, specialization_id: "COACH", xp_change: 500 });
    // A license written around the enforcer claims a higher maximum.
    await db.sql`UPDATE user_licenses SET max_achieved_level = 7 WHERE user_id = 4`;
    const body = await (await award(app, { student_id: 4, specialization_id: "COACH", xp_change: 1 })).json();
    assertEquals([body.license.current_level, body.license.max_achieved_level], [3, 7]);
  }));

Deno.test("unknown students and non-students are 404 and nothing is written", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    for (const id of [999, ADMIN_ID, INSTRUCTOR_ID]) {
      const res = await award(app, { student_id: id, specialization_id: "PLAYER", xp_change: 10 });
      assertEquals(res.status, 404, `student ${id}`);
      assertEquals(res.headers.get("content-type"), "application/problem+json");
    }
    await db.sql`UPDATE users SET is_active = false WHERE id = 5`;
    assertEquals(
      (await award(app, { student_id: 5, specialization_id: "PLAYER", xp_change: 10 })).status,
      404,
    );
    const [counts] = await db.sql`
      SELECT (SELECT count(*) FROM specialization_progress)::int AS p, (SELECT count(*) FROM xp_events)::int AS e`;
    assertEquals([counts.p, counts.e], [0, 0]);
  }));

Deno.test("a retried request with the same Idempotency-Key returns the first result and applies once", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    const body = { student_id: 1, specialization_id: "COACH", xp_change: 200 };
    const first = await award(app, body, { "Idempotency-Key": "award-1" });
    const again = await award(app, body, { "Idempotency-Key": "award-1" });
    assertEquals([first.status, again.status], [200, 200]);
    assertEquals(again.headers.get("idempotent-replayed"), "true");
    assertEquals(await again.json(), await first.json());
    const [row] = await db.sql`SELECT total_xp, (SELECT count(*)::int FROM xp_events) AS events
      FROM specialization_progress WHERE student_id = 1`;
    assertEquals([row.total_xp, row.events], [200, 1]);
  }));

Deno.test("the same Idempotency-Key with another body is 422 and applies nothing", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    await award(app, { student_id: 1, specialization_id: "COACH", xp_change: 200 }, {
      "Idempotency-Key": "k",
    });
    const res = await award(app, { student_id: 1, specialization_id: "COACH", xp_change: 300 }, {
      "Idempotency-Key": "k",
    });
    assertEquals(res.status, 422);
    const [{ total_xp }] = await db.sql`SELECT total_xp FROM specialization_progress WHERE student_id = 1`;
    assertEquals(total_xp, 200);
  }));

Deno.test("idempotency keys belong to the caller: another actor's same key applies anew", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    const body = { student_id: 1, specialization_id: "PLAYER", xp_change: 10 };
    await award(app, body, { "Idempotency-Key": "shared" }, INSTRUCTOR_ID);
    const res = await award(app, body, { "Idempotency-Key": "shared" }, ADMIN_ID);
    assertEquals(res.headers.get("idempotent-replayed"), null);
    const [{ total_xp }] = await db.sql`SELECT total_xp FROM specialization_progress WHERE student_id = 1`;
    assertEquals(total_xp, 20);
  }));

Deno.test("a replayed 404 stays a 404", () =>
  withTestApp(FIVE_STUDENTS, async ({ app }) => {
    const body = { student_id: 4242, specialization_id: "PLAYER", xp_change: 10 };
    assertEquals((await award(app, body, { "Idempotency-Key": "nf" })).status, 404);
    assertEquals((await award(app, body, { "Idempotency-Key": "nf" })).status, 404);
  }));

Deno.test("an invalid Idempotency-Key header is 400 naming the header", () =>
  withTestApp(FIVE_STUDENTS, async ({ app }) => {
    for (const key of ["", "has space", "x".repeat(256)]) {
      const res = await award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 1 }, {
        "Idempotency-Key": key,
      });
      assertEquals(res.status, 400, JSON.stringify(key));
      const problem = await res.json();
      assertEquals(problem.errors[0].field, "Idempotency-Key");
    }
  }));

Deno.test("invalid bodies are 400 naming the field, and write nothing", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    const cases: [unknown, string][] = [
      [{ student_id: 1, specialization_id: "PLAYER", xp_change: 0 }, "xp_change"],
      [{ student_id: 1, specialization_id: "PLAYER", xp_change: -9999999 }, "xp_change"],
      [{ student_id: 1, specialization_id: "PLAYER", xp_change: 1.5 }, "xp_change"],
      [{ student_id: 1, specialization_id: "PLAYER", xp_change: "10" }, "xp_change"],
      [{ student_id: "1", specialization_id: "PLAYER", xp_change: 10 }, "student_id"],
      [{ student_id: 1, specialization_id: "WIZARD", xp_change: 10 }, "specialization_id"],
      [{ student_id: 1, specialization_id: "PLAYER", xp_change: 10, level: 8 }, "level"],
    ];
    for (const [body, field] of cases) {
      const res = await award(app, body);
      assertEquals(res.status, 400, JSON.stringify(body));
      const problem = await res.json();
      assert(
        problem.errors.some((e: { field: string }) => e.field === field),
        JSON.stringify(problem.errors),
      );
    }
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM xp_events`;
    assertEquals(n, 0);
  }));

Deno.test("students may not award XP (403); admins and instructors may", () =>
  withTestApp(FIVE_STUDENTS, async ({ app }) => {
    const res = await app.request(PATH, {
      method: "POST",
      headers: { ...await bearer(1, "STUDENT"), "Content-Type": "application/json" },
      body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 10 }),
    });
    assertEquals(res.status, 403);
    assertEquals(
      (await award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 1 }, {}, ADMIN_ID)).status,
      200,
    );
  }));

Deno.test("a token whose user was deleted or deactivated awards nothing (401)", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    const ghost = await app.request(PATH, {
      method: "POST",
      headers: { ...await bearer(999_999, "INSTRUCTOR"), "Content-Type": "application/json" },
      body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 10 }),
    });
    assertEquals(ghost.status, 401);
    await db.sql`UPDATE users SET is_active = false WHERE id = ${INSTRUCTOR_ID}`;
    assertEquals(
      (await award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 10 })).status,
      401,
    );
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM xp_events`;
    assertEquals(n, 0);
  }));

Deno.test("idempotency keys are kept 48 h, then pruned", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    await award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 1 }, {
      "Idempotency-Key": "old",
    });
    await award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 1 }, {
      "Idempotency-Key": "new",
    });
    await db.sql`UPDATE idempotency_keys SET created_at = now() - interval '49 hours' WHERE key = 'old'`;
    assertEquals(await pruneIdempotencyKeys(db.sql), 1);
    const keys = await db.sql<{ key: string }[]>`SELECT key FROM idempotency_keys`;
    assertEquals(keys.map((k) => k.key), ["new"]);
  }));

Deno.test("an apply_xp outcome the server does not know is a 500, never a 404 or a success", () =>
  withTestApp(FIVE_STUDENTS, async ({ app, db }) => {
    // A database ahead of this build: apply_xp answers a name lib/coupling.ts has no mapping for.
    await db.sql.unsafe(`
      CREATE OR REPLACE FUNCTION apply_xp(
        p_student integer, p_spec text, p_xp bigint, p_actor integer, p_request_id text, p_key text,
        p_deadline timestamptz, OUT outcome text, OUT body text)
      LANGUAGE sql AS $$ SELECT 'postponed'::text, NULL::text $$`);
    const { result: res, lines } = await capturingStderr(() =>
      award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 10 })
    );
    assertEquals(res.status, 500);
    assertEquals(res.headers.get("content-type"), "application/problem+json");
    const body = await res.json();
    assert(!JSON.stringify(body).includes("postponed"), "no internals in the answer");
    assert(lines.some((l) => l.includes('unknown outcome: \\"postponed\\"')), lines.join("\n"));
  }));

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import postgres from "postgres";
import type { TestDatabase } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";

async function student(db: TestDatabase, email = `s${crypto.randomUUID()}@x.test`): Promise<number> {
  const [row] = await db.sql<{ id: number }[]>`
    INSERT INTO users (email, hashed_password, role) VALUES (${email}, 'x', 'STUDENT') RETURNING id`;
  return row.id;
}

Deno.test("level thresholds are data: 8, 8 and 5 levels starting at 0 XP", () =>
  withTestApp(async ({ db }) => {
    const rows = await db.sql<{ id: string; max_levels: number; levels: number; thresholds: number[] }[]>`
      SELECT s.id, s.max_levels, count(*)::int AS levels, array_agg(l.xp_threshold ORDER BY l.level) AS thresholds
      FROM specializations s JOIN specialization_levels l ON l.specialization_id = s.id
      GROUP BY s.id, s.max_levels ORDER BY s.id`;
    assertEquals(rows.map((r) => [r.id, r.max_levels, r.levels]), [
      ["COACH", 8, 8],
      ["INTERNSHIP", 5, 5],
      ["PLAYER", 8, 8],
    ]);
    for (const r of rows) {
      assertEquals(r.thresholds[0], 0);
      assert(r.thresholds.every((t, i) => i === 0 || t > r.thresholds[i - 1]), `${r.id} thresholds ascend`);
    }
  }));

Deno.test("level_for_xp picks the highest reached threshold and caps at max_levels", () =>
  withTestApp(async ({ db }) => {
    const cases: [string, number, number][] = [
      ["PLAYER", 0, 1],
      ["PLAYER", 99, 1],
      ["PLAYER", 100, 2],
      ["PLAYER", 11999, 7],
      ["PLAYER", 12000, 8],
      ["PLAYER", 9007199254740991, 8],
      ["INTERNSHIP", 3499, 4],
      ["INTERNSHIP", 10 ** 12, 5],
      ["COACH", 450, 3],
    ];
    for (const [spec, xp, level] of cases) {
      const [row] = await db.sql<{ level: number }[]>`SELECT level_for_xp(${spec}, ${xp}) AS level`;
      assertEquals(row.level, level, `${spec} at ${xp} XP`);
    }
  }));

Deno.test("the database rejects levels outside 1..max_levels, negative XP and unknown roles", () =>
  withTestApp(async ({ db }) => {
    const id = await student(db);
    const rejects = (q: () => Promise<unknown>) => assertRejects(q, postgres.PostgresError);
    await rejects(() =>
      db.sql`INSERT INTO specialization_progress (student_id, specialization_id, current_level) VALUES (${id}, 'INTERNSHIP', 6)`
    );
    await rejects(() =>
      db.sql`INSERT INTO specialization_progress (student_id, specialization_id, current_level) VALUES (${id}, 'PLAYER', 0)`
    );
    await rejects(() =>
      db.sql`INSERT INTO specialization_progress (student_id, specialization_id, total_xp) VALUES (${id}, 'PLAYER', -1)`
    );
    await rejects(() =>
      db.sql`INSERT INTO user_licenses (user_id, specialization_type, current_level, max_achieved_level) VALUES (${id}, 'COACH', 1, 9)`
    );
    await rejects(() =>
      db.sql`INSERT INTO users (email, hashed_password, role) VALUES ('r@x.test', 'x', 'ROOT')`
    );
    await rejects(() =>
      db.sql`INSERT INTO user_licenses (user_id, specialization_type) VALUES (${id}, 'WIZARD')`
    );
    const [{ count }] = await db.sql`SELECT count(*)::int AS count FROM specialization_progress`;
    assertEquals(count, 0);
  }));

Deno.test("emails are unique regardless of case", () =>
  withTestApp(async ({ db }) => {
    await student(db, "Ada@Example.com");
    await assertRejects(() => student(db, "ada@example.COM"), postgres.PostgresError);
  }));

Deno.test("one progress row and one license per student and specialization", () =>
  withTestApp(async ({ db }) => {
    const id = await student(db);
    await db
      .sql`INSERT INTO specialization_progress (student_id, specialization_id) VALUES (${id}, 'PLAYER')`;
    await assertRejects(
      () =>
        db.sql`INSERT INTO specialization_progress (student_id, specialization_id) VALUES (${id}, 'PLAYER')`,
      postgres.PostgresError,
    );
    await db.sql`INSERT INTO user_licenses (user_id, specialization_type) VALUES (${id}, 'PLAYER')`;
    await assertRejects(
      () => db.sql`INSERT INTO user_licenses (user_id, specialization_type) VALUES (${id}, 'PLAYER')`,
      postgres.PostgresError,
    );
  }));

Deno.test("the XP ledger is append-only: update, delete and truncate are refused", () =>
  withTestApp(async ({ db }) => {
    const id = await student(db);
    await db.sql`
      INSERT INTO xp_events (student_id, specialization_id, xp_change, xp_before, xp_after, level_before, level_after)
      VALUES (${id}, 'PLAYER', 10, 0, 10, 1, 1)`;
    for (
      const attempt of [
        () => db.sql`UPDATE xp_events SET xp_change = 11`,
        () => db.sql`DELETE FROM xp_events`,
        () => db.sql`TRUNCATE xp_events`,
      ]
    ) {
      const err = await assertRejects(attempt, postgres.PostgresError);
      assertEquals(err.message, "xp_events is append-only");
    }
    const [{ count }] = await db.sql`SELECT count(*)::int AS count FROM xp_events`;
    assertEquals(count, 1);
  }));

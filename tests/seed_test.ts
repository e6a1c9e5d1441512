import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { Conflict } from "../lib/errors.ts";
import { seed, type SeedOptions } from "../lib/seed.ts";
import { hasServer } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";
import { runScript } from "./_process.ts";

const OPTIONS: SeedOptions = {
  students: 300,
  desyncRate: 0,
  adminEmail: "admin@staging.example.com",
  adminPassword: "admin-password",
  studentPassword: "student-password",
};

Deno.test("seed gives students ids 1..N, plus an admin and an instructor after them", () =>
  withTestApp(async ({ db }) => {
    const result = await seed(db.sql, OPTIONS);
    const rows = await db.sql<{ role: string; n: number; min: number; max: number }[]>`
      SELECT role, count(*)::int AS n, min(id) AS min, max(id) AS max FROM users GROUP BY role ORDER BY role`;
    assertEquals(rows, [
      { role: "ADMIN", n: 1, min: 301, max: 301 },
      { role: "INSTRUCTOR", n: 1, min: 302, max: 302 },
      { role: "STUDENT", n: 300, min: 1, max: 300 },
    ]);
    assertEquals([result.adminId, result.instructorId], [301, 302]);
    const [admin] = await db.sql`SELECT email FROM users WHERE id = 301`;
    assertEquals(admin.email, "admin@staging.example.com");
  }));

Deno.test("seeded progress is coupled: licenses match, levels follow thresholds, the ledger adds up", () =>
  withTestApp(async ({ db }) => {
    const result = await seed(db.sql, OPTIONS);
    const [counts] = await db.sql`
      SELECT
        (SELECT count(*) FROM specialization_progress)::int AS progress,
        (SELECT count(*) FROM user_licenses)::int AS licenses,
        (SELECT count(*) FROM xp_events)::int AS events,
        (SELECT count(*) FROM (
          SELECT student_id FROM specialization_progress GROUP BY student_id HAVING count(*) BETWEEN 1 AND 3
        ) s)::int AS students_with_1_to_3`;
    assertEquals(counts.progress, result.progressRows);
    assertEquals(counts.licenses, result.progressRows);
    assertEquals(counts.events, result.progressRows);
    assertEquals(counts.students_with_1_to_3, 300);
    const [bad] = await db.sql`
      SELECT count(*)::int AS n FROM specialization_progress p
      LEFT JOIN user_licenses l ON l.user_id = p.student_id AND l.specialization_type = p.specialization_id
      LEFT JOIN (
        SELECT student_id, specialization_id, sum(xp_after - xp_before) AS xp FROM xp_events GROUP BY 1, 2
      ) e ON e.student_id = p.student_id AND e.specialization_id = p.specialization_id
      WHERE l.id IS NULL OR l.current_level <> p.current_level OR l.max_achieved_level <> p.current_level
        OR p.current_level <> level_for_xp(p.specialization_id, p.total_xp) OR e.xp IS DISTINCT FROM p.total_xp`;
    assertEquals(bad.n, 0);
    const [spread] = await db
      .sql`SELECT count(DISTINCT current_level)::int AS levels FROM specialization_progress`;
    assert(spread.levels >= 4, "XP is spread over several levels");
  }));

Deno.test("--desync-rate breaks about that fraction of pairs, by license level or a missing license", () =>
  withTestApp(async ({ db }) => {
    const result = await seed(db.sql, { ...OPTIONS, students: 1000, desyncRate: 0.1 });
    const [row] = await db.sql`
      SELECT count(*)::int AS n FROM specialization_progress p
      LEFT JOIN user_licenses l ON l.user_id = p.student_id AND l.specialization_type = p.specialization_id
      WHERE l.id IS NULL OR l.current_level <> p.current_level`;
    assertEquals(row.n, result.desyncedPairs);
    const rate = result.desyncedPairs / result.progressRows;
    assert(rate > 0.06 && rate < 0.14, `desync rate ${rate} is near 0.1`);
  }));

Deno.test("seed refuses a database that already has users, and writes nothing", () =>
  withTestApp(async ({ db }) => {
    await seed(db.sql, { ...OPTIONS, students: 10 });
    await assertRejects(() => seed(db.sql, { ...OPTIONS, students: 10 }), Conflict);
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM users`;
    assertEquals(n, 12);
  }));

function runSeed(args: string[], env: Record<string, string>) {
  return runScript("tasks/seed.ts", args, env);
}

Deno.test({
  name: "deno task seed fills the database and explains bad input in one line",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db }) => {
    const env = {
      DATABASE_URL: db.url,
      SEED_ADMIN_PASSWORD: "admin-pass-1",
      SEED_STUDENT_PASSWORD: "student-pass-1",
    };
    const ok = await runSeed(["--students", "50", "--desync-rate", "0"], env);
    assertEquals(ok.code, 0, ok.stderr);
    assert(ok.stdout.startsWith("seeded 50 students"), ok.stdout);
    // It says what it is about to do, defaults included; no progress line when not on a terminal.
    assertEquals(ok.stderr.trim(), "seed: 50 students, desync rate 0, admin admin@staging.example.com");
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM users WHERE role = 'STUDENT'`;
    assertEquals(n, 50);

    for (const args of [["--students", "ten"], ["--desync", "0.1"], []]) {
      const bad = await runSeed(args, env);
      assertEquals(bad.code, 2, `${args}: ${bad.stderr}`);
      const [first, second] = bad.stderr.split("\n");
      assert(/^seed: (--students|Unknown option '--desync')/.test(first), first);
      assert(second.startsWith("usage: deno task seed"), bad.stderr);
    }
    const [{ users }] = await db.sql`SELECT count(*)::int AS users FROM users`;
    assertEquals(users, 52, "bad arguments wrote nothing");

    const noPasswords = await runSeed(["--students", "5"], { DATABASE_URL: db.url });
    assertEquals(noPasswords.code, 1);
    assert(noPasswords.stderr.includes("SEED_ADMIN_PASSWORD"), noPasswords.stderr);
  }));

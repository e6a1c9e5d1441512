import { assert, assertEquals } from "./_assert.ts";
import { join } from "node:path";
import { DEGRADED_MIN_RATE, HEALTHY_MIN_RATE, statusFor } from "../lib/integrity/status.ts";
import { pruneCheckLogs } from "../lib/integrity/log_files.ts";
import { hasServer } from "./_db.ts";
import type { Sql } from "../lib/db.ts";
import { adminBearer, type App, withTestApp } from "./_fixture.ts";
import { breakKnownPairs, dropLicenses, type Expected, seedConsistent, sortExpected } from "./_integrity.ts";
import { runScript } from "./_process.ts";

/** The admin seedConsistent creates with its default 200 students. */
const ADMIN_ID = 201;

/** API calls as the database's first active admin (asked at each call: a test may seed in between). */
function appFor(app: App, sql: Sql) {
  const post = async (path: string, body?: unknown) => {
    const auth = await adminBearer(sql);
    return await app.request(path, {
      method: "POST",
      headers: body === undefined ? auth : { ...auth, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  const get = async (path: string) => await app.request(path, { headers: await adminBearer(sql) });
  return { app, post, get };
}

/** Every violation of the latest check, walking the pages. */
async function allViolations(get: (path: string) => Response | Promise<Response>, filter = "") {
  const items: (Expected & { id: number })[] = [];
  let cursor: string | null = null;
  do {
    const res = await get(`/api/v1/health/violations?limit=3${filter}${cursor ? `&cursor=${cursor}` : ""}`);
    assertEquals(res.status, 200);
    const page = await res.json();
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

Deno.test("the scan reports exactly the seeded desyncs of every kind, with the right rate and status", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    const pairs = await seedConsistent(db.sql);
    const { expected, brokenPairs } = await breakKnownPairs(db.sql);
    const { post, get } = appFor(app, db.sql);

    const res = await post("/api/v1/health/check-now");
    assertEquals(res.status, 200);
    const check = await res.json();
    // The orphan's progress row was deleted, but its license is still a pair.
    assertEquals(check.pairs_checked, pairs);
    assertEquals(check.consistent_pairs, pairs - brokenPairs);
    assertEquals(check.violation_count, expected.length);
    assertEquals(check.consistency_rate, (pairs - brokenPairs) / pairs);
    assertEquals(check.status, statusFor((pairs - brokenPairs) / pairs));
    assertEquals(check.counts_by_kind, {
      LEVEL_MISMATCH: 2,
      MISSING_LICENSE: 1,
      ORPHAN_LICENSE: 1,
      MAX_LEVEL_BELOW_CURRENT: 2,
      LEVEL_XP_MISMATCH: 1,
      LEDGER_MISMATCH: 1,
    });
    assertEquals(check.outcome, "success");
    assertEquals(check.trigger, "manual");
    assertEquals(check.scope_user_id, null);

    assertEquals(sortExpected(await allViolations(get)), expected);
    const [stored] = await db
      .sql`SELECT count(*)::int AS n FROM integrity_violations WHERE check_id = ${check.id}`;
    assertEquals(stored.n, expected.length);
  }));

Deno.test("violation details carry the values that disagree", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    await seedConsistent(db.sql, 50);
    await breakKnownPairs(db.sql);
    const { post, get } = appFor(app, db.sql);
    await post("/api/v1/health/check-now");
    const page = await (await get("/api/v1/health/violations?kind=LEDGER_MISMATCH")).json();
    assertEquals(page.total, 1);
    const [v] = page.items;
    assertEquals(v.details.ledger_xp - v.details.total_xp, 5);
    const xp = await (await get("/api/v1/health/violations?kind=LEVEL_XP_MISMATCH")).json();
    assertEquals(xp.items[0].details.expected_level - xp.items[0].details.progress_level, 1);
  }));

Deno.test("a consistent database is healthy with rate 1, and an empty one too", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    const { post } = appFor(app, db.sql);
    const empty = await (await post("/api/v1/health/check-now")).json();
    assertEquals([empty.pairs_checked, empty.consistency_rate, empty.status], [0, 1, "healthy"]);
    // seed fills an empty database only: the admin who asked goes first (the seeded one asks next).
    await db.sql`DELETE FROM users`;
    const pairs = await seedConsistent(db.sql, 100);
    const full = await (await post("/api/v1/health/check-now")).json();
    assertEquals([full.pairs_checked, full.violation_count, full.consistency_rate, full.status], [
      pairs,
      0,
      1,
      "healthy",
    ]);
  }));

Deno.test("check-now with user_id checks that student only and records the scope", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    await seedConsistent(db.sql, 50);
    const { expected } = await breakKnownPairs(db.sql);
    const { post, get } = appFor(app, db.sql);
    const target = expected.find((e) => e.kind === "MISSING_LICENSE")!;
    const res = await post("/api/v1/health/check-now", { user_id: target.student_id });
    assertEquals(res.status, 200);
    const check = await res.json();
    const [{ n }] = await db.sql`
      SELECT count(*)::int AS n FROM specialization_progress WHERE student_id = ${target.student_id}`;
    assertEquals(check.scope_user_id, target.student_id);
    assertEquals(check.pairs_checked, n);
    assertEquals(check.violation_count, 1);
    const rows = await db.sql`SELECT kind, student_id FROM integrity_violations WHERE check_id = ${check.id}`;
    assertEquals([...rows], [{ kind: "MISSING_LICENSE", student_id: target.student_id }]);
    // A scoped check never becomes the status.
    const status = await (await get("/api/v1/health/status")).json();
    assertEquals(status.status, "unknown");

    const unknown = await post("/api/v1/health/check-now", { user_id: 999_999 });
    assertEquals(unknown.status, 404);
  }));

Deno.test("status thresholds: healthy from 99 %, degraded from 95 %, critical below", () => {
  assertEquals([HEALTHY_MIN_RATE, DEGRADED_MIN_RATE], [0.99, 0.95]);
  assertEquals(statusFor(1), "healthy");
  assertEquals(statusFor(0.99), "healthy");
  assertEquals(statusFor(0.9899), "degraded");
  assertEquals(statusFor(0.95), "degraded");
  assertEquals(statusFor(0.9499), "critical");
  assertEquals(statusFor(0), "critical");
});

Deno.test("each check writes a JSON log that parses, and old logs are pruned", () =>
  withTestApp({ pool: 6 }, async ({ db, logDir, app }) => {
    await seedConsistent(db.sql, 50);
    await breakKnownPairs(db.sql);
    const dir = join(logDir, "integrity_checks");
    await Deno.mkdir(dir, { recursive: true });
    const old = join(dir, "check_20200101T000000Z_1.json");
    await Deno.writeTextFile(old, "{}");
    const unrelated = join(dir, "notes.txt");
    await Deno.writeTextFile(unrelated, "kept");

    const { post } = appFor(app, db.sql);
    const check = await (await post("/api/v1/health/check-now")).json();
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    const mine = names.filter((n) => n.endsWith(`_${check.id}.json`));
    assertEquals(mine.length, 1);
    assert(
      !names.includes("check_20200101T000000Z_1.json"),
      "a log older than INTEGRITY_HISTORY_DAYS is pruned",
    );
    assert(names.includes("notes.txt"), "files that are not check logs are left alone");
    assert(!names.some((n) => n.endsWith(".tmp")), "no temp file is left behind");

    const log = JSON.parse(await Deno.readTextFile(join(dir, mine[0])));
    assertEquals(log.check.id, check.id);
    assertEquals(log.check.violation_count, 8);
    assertEquals(log.violations_sample.length, 8);
    assertEquals(log.sample_truncated, false);
    assert(log.violations_sample.every((v: Expected) => v.kind && v.student_id && v.specialization_id));

    assertEquals(await pruneCheckLogs(logDir, 30, Date.now() + 31 * 86_400_000), 1);
  }));

Deno.test("old checks and their violations are pruned after INTEGRITY_HISTORY_DAYS", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    await seedConsistent(db.sql, 20);
    const [old] = await db.sql`
      INSERT INTO integrity_checks (trigger, outcome, started_at, finished_at)
      VALUES ('schedule', 'success', now() - interval '31 days', now() - interval '31 days') RETURNING id`;
    await db.sql`INSERT INTO integrity_violations (check_id, kind, student_id, specialization_id)
      VALUES (${old.id}, 'MISSING_LICENSE', 1, 'PLAYER')`;
    const { post } = appFor(app, db.sql);
    await post("/api/v1/health/check-now");
    const rows = await db.sql`SELECT id FROM integrity_checks WHERE id = ${old.id}`;
    assertEquals(rows.length, 0);
    const [{ n }] = await db
      .sql`SELECT count(*)::int AS n FROM integrity_violations WHERE check_id = ${old.id}`;
    assertEquals(n, 0);
  }));

Deno.test("repair fixes exactly the repairable reported pairs, reports the rest, and a rescan is healthy", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    await seedConsistent(db.sql);
    const { expected } = await breakKnownPairs(db.sql);
    const { post, get } = appFor(app, db.sql);
    await post("/api/v1/health/check-now");

    const res = await post("/api/v1/health/violations/repair", { dry_run: false });
    assertEquals(res.status, 200);
    const result = await res.json();
    const unrepairable = ["ORPHAN_LICENSE", "LEDGER_MISMATCH"];
    const repairable = new Set(
      expected.filter((e) => !unrepairable.includes(e.kind)).map((e) =>
        `${e.student_id}/${e.specialization_id}`
      ),
    );
    const changed = new Set(result.changes.map((c: Expected) => `${c.student_id}/${c.specialization_id}`));
    assertEquals([...changed].sort(), [...repairable].sort());
    assertEquals(result.repaired_pairs, repairable.size);
    assertEquals(
      sortExpected(result.not_repairable),
      expected.filter((e) => unrepairable.includes(e.kind)),
    );
    const created = result.changes.filter((c: { license_created: boolean }) => c.license_created);
    assertEquals(created.length, 1);
    const xpFix = expected.find((e) => e.kind === "LEVEL_XP_MISMATCH")!;
    const fixed = result.changes.find((c: Expected) => c.student_id === xpFix.student_id);
    assertEquals(fixed.progress_level.after - fixed.progress_level.before, 1);

    const [audit] = await db
      .sql`SELECT actor_id, action, details FROM audit_log WHERE id = ${result.audit_id}`;
    assertEquals(audit.action, "integrity.repair");
    assertEquals(audit.actor_id, ADMIN_ID);
    assertEquals(audit.details.repaired_pairs, repairable.size);

    // The repair ran a full check itself: the status shows the repaired state right away.
    assertEquals([result.check.trigger, result.check.outcome, result.check.status], [
      "repair",
      "success",
      "healthy",
    ]);
    assertEquals(result.check.violation_count, 2);
    const status = await (await get("/api/v1/health/status")).json();
    assertEquals([status.last_check.id, status.violation_count], [result.check.id, 2]);
    assertEquals(status.violations_by_kind.ORPHAN_LICENSE + status.violations_by_kind.LEDGER_MISMATCH, 2);

    const again = await (await post("/api/v1/health/violations/repair", { dry_run: false })).json();
    assertEquals(again.repaired_pairs, 0);
  }));

Deno.test("a repair dry run reports the changes and writes nothing", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    await seedConsistent(db.sql, 80);
    const { expected } = await breakKnownPairs(db.sql);
    const snapshot = () =>
      db.sql`
      SELECT (SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM specialization_progress p) AS progress,
             (SELECT md5(string_agg(l::text, ',' ORDER BY id)) FROM user_licenses l) AS licenses,
             (SELECT count(*)::int FROM audit_log) AS audits`;
    const [before] = await snapshot();
    const { post } = appFor(app, db.sql);
    const res = await post("/api/v1/health/violations/repair", { dry_run: true });
    assertEquals(res.status, 200);
    const result = await res.json();
    assertEquals(result.dry_run, true);
    assertEquals(result.would_repair, 5);
    assertEquals([result.repaired_pairs, result.audit_id, result.check], [undefined, undefined, undefined]);
    const [after] = await snapshot();
    assertEquals(after, before);

    const one = expected.find((e) => e.kind === "MISSING_LICENSE")!;
    const scoped = await (await post("/api/v1/health/violations/repair", {
      student_id: one.student_id,
      dry_run: true,
    })).json();
    assertEquals(scoped.changes.map((c: Expected) => [c.student_id, c.specialization_id]), [[
      one.student_id,
      one.specialization_id,
    ]]);
  }));

Deno.test("repair rejects bad input with 400 naming the field, and an unknown student with 404", () =>
  withTestApp({ pool: 6 }, async ({ db, app }) => {
    const { post } = appFor(app, db.sql);
    for (
      const [body, field] of [
        [{}, "dry_run"],
        [{ dry_run: "yes" }, "dry_run"],
        [{ dry_run: true, student_id: "1; DROP TABLE users; --" }, "student_id"],
        [{ dry_run: true, extra: 1 }, "extra"],
      ] as const
    ) {
      const res = await post("/api/v1/health/violations/repair", body);
      assertEquals(res.status, 400);
      const problem = await res.json();
      assert(problem.errors.some((e: { field: string }) => e.field === field), JSON.stringify(problem));
    }
    const missing = await post("/api/v1/health/violations/repair", { dry_run: true, student_id: 424242 });
    assertEquals(missing.status, 404);
  }));

function runScanCli(url: string, logDir: string) {
  return runScript("tasks/scan.ts", [], { DATABASE_URL: url, LOG_DIR: logDir });
}

Deno.test({
  name: "deno task scan prints a summary and exits 0 when healthy, 3 when critical",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 6 }, async ({ db, logDir }) => {
    await seedConsistent(db.sql, 100);
    const ok = await runScanCli(db.url, logDir);
    assertEquals(ok.code, 0, ok.stderr);
    assert(/^check \d+: healthy - 100\.000 % consistent/.test(ok.stdout), ok.stdout);

    await dropLicenses(db.sql, 10);
    const bad = await runScanCli(db.url, logDir);
    assertEquals(bad.code, 3, bad.stderr);
    assert(bad.stdout.includes("critical"), bad.stdout);
    assert(bad.stdout.includes("MISSING_LICENSE"), bad.stdout);
    const rows = await db.sql`SELECT trigger, status FROM integrity_checks ORDER BY id`;
    assertEquals([...rows], [{ trigger: "cli", status: "healthy" }, { trigger: "cli", status: "critical" }]);
  }));

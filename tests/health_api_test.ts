import { assert, assertEquals } from "./_assert.ts";
import { hasServer } from "./_db.ts";
import { adminBearer, bearer, withTestApp } from "./_fixture.ts";
import { breakKnownPairs, seedConsistent } from "./_integrity.ts";

/** The schedule configured, so next_check_at is set. */
const SCHEDULED = { pool: 8, env: { SCAN_ENABLED: "1", SCAN_CRON: "*/5 * * * *" } };

const STATUS_KEYS = [
  "consistency_rate",
  "consistent_pairs",
  "last_check",
  "next_check_at",
  "pairs_checked",
  "scan_running",
  "status",
  "thresholds",
  "violation_count",
  "violations_by_kind",
].sort();

Deno.test("status is unknown before the first check, with every field present", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    const auth = await adminBearer(db.sql);
    const res = await app.request("/api/v1/health/status", { headers: auth });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("cache-control"), "no-store");
    const body = await res.json();
    assertEquals(Object.keys(body).sort(), STATUS_KEYS);
    assertEquals(body.status, "unknown");
    assertEquals(body.consistency_rate, null);
    assertEquals(body.last_check, null);
    assertEquals(body.scan_running, false);
    assertEquals(body.thresholds, { healthy: 0.99, degraded: 0.95 });
    const next = new Date(body.next_check_at);
    assert(next.getTime() > Date.now() && next.getTime() <= Date.now() + 5 * 60_000, body.next_check_at);
    assertEquals(next.getUTCMinutes() % 5, 0);
  }));

Deno.test("the health endpoints need an ADMIN token: 401 without one, 403 for other roles", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    await db.sql`INSERT INTO users (id, email, hashed_password, role)
      VALUES (5, 'i@test.example', 'x', 'INSTRUCTOR'), (6, 's@test.example', 'x', 'STUDENT')`;
    const paths = [
      ["GET", "/api/v1/health/status"],
      ["GET", "/api/v1/health/metrics"],
      ["GET", "/api/v1/health/violations"],
      ["POST", "/api/v1/health/check-now"],
      ["POST", "/api/v1/health/violations/repair"],
    ];
    for (const [method, path] of paths) {
      assertEquals((await app.request(path, { method })).status, 401, path);
      for (const [id, role] of [[5, "INSTRUCTOR"], [6, "STUDENT"]] as const) {
        const res = await app.request(path, { method, headers: await bearer(id, role) });
        assertEquals(res.status, 403, `${role} ${path}`);
      }
    }
  }));

Deno.test("status is served from the last finished full check", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    const pairs = await seedConsistent(db.sql, 100);
    const auth = await adminBearer(db.sql);
    const { expected, brokenPairs } = await breakKnownPairs(db.sql);
    const check = await (await app.request("/api/v1/health/check-now", { method: "POST", headers: auth }))
      .json();
    const body = await (await app.request("/api/v1/health/status", { headers: auth })).json();
    assertEquals(Object.keys(body).sort(), STATUS_KEYS);
    assertEquals(body.last_check, check);
    assertEquals(body.status, check.status);
    assertEquals(body.consistency_rate, (pairs - brokenPairs) / pairs);
    assertEquals(body.pairs_checked, pairs);
    assertEquals(body.violation_count, expected.length);
    assertEquals(
      body.violations_by_kind.MAX_LEVEL_BELOW_CURRENT,
      expected.filter((e) => e.kind === "MAX_LEVEL_BELOW_CURRENT").length,
    );
    assertEquals(body.scan_running, false);
    // Reading the status does not scan.
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks`;
    assertEquals(n, 1);
  }));

Deno.test("check-now accepts no body, an empty JSON body and {}; a non-integer user_id is 400", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    await seedConsistent(db.sql, 20);
    const auth = await adminBearer(db.sql);
    const url = "/api/v1/health/check-now";
    const json = { ...auth, "Content-Type": "application/json" };
    assertEquals((await app.request(url, { method: "POST", headers: auth })).status, 200);
    assertEquals((await app.request(url, { method: "POST", headers: json })).status, 200);
    assertEquals((await app.request(url, { method: "POST", headers: json, body: "" })).status, 200);
    assertEquals((await app.request(url, { method: "POST", headers: json, body: "{}" })).status, 200);
    for (const bad of ['{"user_id": "1; DROP TABLE users; --"}', '{"user_id": 1.5}', '{"user_id": -1}']) {
      const res = await app.request(url, { method: "POST", headers: json, body: bad });
      assertEquals(res.status, 400, bad);
      assertEquals(res.headers.get("content-type"), "application/problem+json");
      const problem = await res.json();
      assertEquals(problem.errors.map((e: { field: string }) => e.field), ["user_id"]);
    }
    const unknown = await app.request(url, { method: "POST", headers: json, body: '{"student": 1}' });
    assertEquals(unknown.status, 400);
    assertEquals((await unknown.json()).errors[0].field, "student");
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM users`;
    assertEquals(n, 22);
  }));

Deno.test({
  name: "concurrent check-now calls run one scan and all get the same check",
  ignore: !hasServer,
}, () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    await seedConsistent(db.sql, 200);
    const auth = await adminBearer(db.sql);
    const responses = await Promise.all(
      Array.from({ length: 6 }, () =>
        app.request("/api/v1/health/check-now", { method: "POST", headers: auth })),
    );
    const bodies = await Promise.all(responses.map((r) =>
      r.json()
    ));
    assert(responses.every((r) => r.status === 200));
    assertEquals(new Set(bodies.map((b) => b.id)).size, 1);
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks`;
    assertEquals(n, 1);
  }));

Deno.test("metrics aggregate the window's checks, with history points", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    // History first (ids follow time, as in production): a scheduled success three hours ago.
    await db.sql`INSERT INTO integrity_checks (trigger, outcome, status, started_at, finished_at, duration_ms,
        pairs_checked, consistent_pairs, violation_count, consistency_rate)
      VALUES ('schedule', 'success', 'healthy', now() - interval '3 hours', now() - interval '3 hours', 10, 10, 10, 0, 1)`;
    await seedConsistent(db.sql, 50);
    const auth = await adminBearer(db.sql);
    await app.request("/api/v1/health/check-now", { method: "POST", headers: auth });
    await breakKnownPairs(db.sql);
    await app.request("/api/v1/health/check-now", { method: "POST", headers: auth });
    await db.sql`INSERT INTO integrity_checks (trigger, outcome, finished_at, duration_ms)
      VALUES ('schedule', 'skipped', now(), 0), ('schedule', 'failure', now(), 3)`;

    const hour = await (await app.request("/api/v1/health/metrics?window=1h", { headers: auth })).json();
    assertEquals(hour.window, "1h");
    assertEquals(hour.checks, { success: 2, failure: 1, skipped: 1, running: 0 });
    assertEquals(hour.scheduler, { success: 0, failure: 1, skipped: 1, success_rate: 0 });
    assertEquals(hour.consistency_rate.avg, (1 + hour.consistency_rate.latest) / 2);
    assertEquals(hour.consistency_rate.min, hour.consistency_rate.latest);
    assertEquals([hour.violations.max, hour.violations.latest], [8, 8]);
    assert(hour.duration_ms.p50 > 0 && hour.duration_ms.p95 <= hour.duration_ms.max);
    assertEquals(hour.history.bucket_seconds, 60);
    assertEquals(hour.history.points.reduce((n: number, p: { checks: number }) => n + p.checks, 0), 2);
    assert(hour.history.points.every((p: Record<string, unknown>) => typeof p.at === "string"));

    const day = await (await app.request("/api/v1/health/metrics?window=24h", { headers: auth })).json();
    assertEquals(day.scheduler, { success: 1, failure: 1, skipped: 1, success_rate: 0.5 });
    assertEquals(day.history.points.length >= 2, true);
    const byDefault = await (await app.request("/api/v1/health/metrics", { headers: auth })).json();
    assertEquals(byDefault.window, "24h");

    const bad = await app.request("/api/v1/health/metrics?window=2h", { headers: auth });
    assertEquals(bad.status, 400);
    assertEquals((await bad.json()).errors[0].field, "window");
  }));

Deno.test("violations pagination walks every item exactly once, with filters and total", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    await seedConsistent(db.sql, 300);
    const auth = await adminBearer(db.sql);
    // 30 missing licenses, ids spread over the table.
    await db.sql`DELETE FROM user_licenses WHERE id IN (SELECT id FROM user_licenses ORDER BY id LIMIT 30)`;
    await breakKnownPairs(db.sql);
    const check = await (await app.request("/api/v1/health/check-now", { method: "POST", headers: auth }))
      .json();
    const walk = async (filter: string, limit: number) => {
      const ids: number[] = [];
      let cursor: string | null = null;
      let total = -1;
      do {
        const url = `/api/v1/health/violations?limit=${limit}${filter}${cursor ? `&cursor=${cursor}` : ""}`;
        const res = await app.request(url, { headers: auth });
        assertEquals(res.status, 200);
        const page = await res.json();
        assert(page.items.length <= limit);
        assertEquals(page.check_id, check.id);
        total = page.total;
        ids.push(...page.items.map((i: { id: number }) => i.id));
        cursor = page.next_cursor;
      } while (cursor);
      return { ids, total };
    };
    const all = await walk("", 7);
    assertEquals(all.total, check.violation_count);
    assertEquals(all.ids.length, check.violation_count);
    assertEquals(new Set(all.ids).size, all.ids.length);
    assertEquals(all.ids, [...all.ids].sort((a, b) => a - b));

    const missing = await walk("&kind=MISSING_LICENSE", 4);
    assertEquals(missing.total, check.counts_by_kind.MISSING_LICENSE);
    assertEquals(missing.ids.length, missing.total);

    const [{ n }] = await db.sql`
      SELECT count(*)::int AS n FROM integrity_violations
      WHERE check_id = ${check.id} AND kind = 'MISSING_LICENSE' AND specialization_id = 'COACH'`;
    const coach = await walk("&kind=MISSING_LICENSE&specialization=COACH", 2);
    assertEquals([coach.total, coach.ids.length], [n, n]);

    const exact = await (await app.request(`/api/v1/health/violations?limit=500`, { headers: auth })).json();
    assertEquals(exact.next_cursor, null);
    const item = exact.items[0];
    assertEquals(Object.keys(item).sort(), [
      "check_id",
      "details",
      "id",
      "kind",
      "specialization_id",
      "student_id",
    ]);
  }));

Deno.test("a bad cursor, kind or limit is 400 naming the parameter", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    const auth = await adminBearer(db.sql);
    for (
      const [qs, field] of [
        ["cursor=not%20a%20cursor", "cursor"],
        ["cursor=AAAA", "cursor"],
        [`cursor=${btoa("v1:x:1")}`, "cursor"],
        ["kind=NOPE", "kind"],
        ["specialization=CHESS", "specialization"],
        ["limit=0", "limit"],
        ["limit=501", "limit"],
        ["colour=red", "colour"],
      ]
    ) {
      const res = await app.request(`/api/v1/health/violations?${qs}`, { headers: auth });
      assertEquals(res.status, 400, qs);
      const problem = await res.json();
      assertEquals(problem.errors.map((e: { field: string }) => e.field), [field], qs);
    }
  }));

Deno.test("violations before any check are an empty page", () =>
  withTestApp(SCHEDULED, async ({ db, app }) => {
    const auth = await adminBearer(db.sql);
    const body = await (await app.request("/api/v1/health/violations", { headers: auth })).json();
    assertEquals(body, { items: [], next_cursor: null, total: 0, check_id: null });
  }));

Deno.test("the status is served from memory until a check event, with a one-second expiry as the fallback", () =>
  withTestApp(async ({ db, app, deps }) => {
    const auth = await adminBearer(db.sql);
    const status = async () =>
      (await (await app.request("/api/v1/health/status", { headers: auth })).json()).status;
    assertEquals(await status(), "unknown");
    // Written around this process (another instance without LISTEN): not seen at once...
    const insert = (rate: number, state: string) =>
      db.sql`INSERT INTO integrity_checks (trigger, outcome, status, finished_at, duration_ms, pairs_checked,
          consistent_pairs, violation_count, consistency_rate)
        VALUES ('manual', 'success', ${state}, now(), 1, 100, ${rate * 100}, ${
        100 - rate * 100
      }, ${rate}) RETURNING id`;
    await insert(0.97, "degraded");
    assertEquals(await status(), "unknown", "kept in memory");
    // ...but after the expiry.
    await new Promise((r) => setTimeout(r, 1100));
    assertEquals(await status(), "degraded");
    // A check event (LISTEN, or this process's runner) makes it fresh at once.
    const [row] = await insert(0.5, "critical");
    assertEquals(await status(), "degraded");
    deps.events.emit({ id: row.id, outcome: "success", trigger: "manual", status: "critical" });
    assertEquals(await status(), "critical");
  }));

/** GET /metrics: access, the series and their labels, shared health gauges, process metrics. */
import postgres from "postgres";
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { metricsUsedByOps, runbookAnchors } from "./support/ops_metrics.ts";
import { createSession } from "../lib/sessions.ts";
import { bearer, capturingStderr, closedPort, type TestApp, withTestApp } from "./_fixture.ts";
import { breakKnownPairs, seedConsistent } from "./_integrity.ts";
import { parseScrape, type Scrape } from "./_prom.ts";
import { addStudents, ADMIN_ID, INSTRUCTOR_ID } from "./_students.ts";

const from = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 40000 } });
const LOOPBACK = from("127.0.0.1");

async function scrape(app: TestApp["app"]): Promise<Scrape> {
  const res = await app.request("/metrics", {}, LOOPBACK);
  assertEquals(res.status, 200, "scrape status");
  return parseScrape(await res.text());
}

Deno.test("/metrics answers loopback clients only when METRICS_TOKEN is unset, also behind a proxy", () =>
  withTestApp(async ({ app, another }) => {
    const ok = await app.request("/metrics", {}, LOOPBACK);
    assertEquals(ok.status, 200);
    assertMatch(ok.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assertEquals(ok.headers.get("cache-control"), "no-store");
    assertEquals((await app.request("/metrics", {}, from("::1"))).status, 200);
    const remote = await app.request("/metrics", {}, from("203.0.113.5"));
    assertEquals(remote.status, 403);
    assertEquals(remote.headers.get("content-type"), "application/problem+json");
    assertMatch((await remote.json()).detail, /METRICS_TOKEN/);
    // No socket address at all: refused, not assumed local.
    assertEquals((await app.request("/metrics")).status, 403);
    // A forged X-Forwarded-For means nothing without TRUST_PROXY...
    assertEquals(
      (await app.request("/metrics", { headers: { "x-forwarded-for": "127.0.0.1" } }, from("203.0.113.5")))
        .status,
      403,
    );
    // ...nor with it from a peer that is no listed proxy (TRUST_PROXY=1 believed any peer)...
    const { app: proxied } = await another({ env: { TRUST_PROXY: "127.0.0.1/32" } });
    for (const forged of ["127.0.0.1", "::1", "203.0.113.5, 127.0.0.1"]) {
      assertEquals(
        (await proxied.request("/metrics", { headers: { "x-forwarded-for": forged } }, from("203.0.113.5")))
          .status,
        403,
        forged,
      );
    }
    // ...and a proxy on this host forwarding a remote client does not open the endpoint.
    assertEquals(
      (await proxied.request("/metrics", { headers: { "x-forwarded-for": "198.51.100.9" } }, LOOPBACK))
        .status,
      403,
    );
    assertEquals(
      (await proxied.request(
        "/metrics",
        { headers: { "x-forwarded-for": "127.0.0.1, 198.51.100.9" } },
        LOOPBACK,
      ))
        .status,
      403,
      "a loopback address a client wrote left of the one the proxy appended",
    );
    assertEquals(
      (await proxied.request("/metrics", { headers: { "x-forwarded-for": "127.0.0.1" } }, LOOPBACK)).status,
      200,
    );
    assertEquals((await proxied.request("/metrics", {}, LOOPBACK)).status, 200, "a scrape on this host");
  }));

Deno.test("with METRICS_TOKEN the bearer token is required from anywhere, loopback included", () =>
  withTestApp({ env: { METRICS_TOKEN: "scrape-token-0123456789" } }, async ({ app }) => {
    const none = await app.request("/metrics", {}, LOOPBACK);
    assertEquals(none.status, 401);
    assertEquals(none.headers.get("www-authenticate"), 'Bearer realm="metrics"');
    const wrong = { headers: { authorization: "Bearer scrape-token-012345678X" } };
    assertEquals((await app.request("/metrics", wrong, from("203.0.113.5"))).status, 401);
    const right = { headers: { authorization: "Bearer scrape-token-0123456789" } };
    assertEquals((await app.request("/metrics", right, from("203.0.113.5"))).status, 200);
  }));

Deno.test("/metrics is never rate limited, and the limiter's 429s are counted", () =>
  withTestApp({ env: { RATE_LIMIT_PER_MINUTE: "2" } }, async ({ app }) => {
    for (let i = 0; i < 4; i++) await app.request("/api/v1/openapi.json", {}, LOOPBACK);
    for (let i = 0; i < 10; i++) assertEquals((await app.request("/metrics", {}, LOOPBACK)).status, 200);
    const s = await scrape(app);
    assertEquals(s.value("levelguard_rate_limited_total"), 2);
    assertEquals(
      s.value("levelguard_http_requests_total", {
        method: "GET",
        route: "/api/v1/openapi.json",
        status_class: "4xx",
      }),
      2,
    );
  }));

Deno.test("HTTP series are labelled by route pattern and status class, never by raw path", () =>
  withTestApp({ students: 0 }, async ({ app }) => {
    await app.request("/admin/students/4242");
    await app.request("/api/v1/no-such-thing/77");
    await app.request("/healthz", { method: "DELETE" });
    await app.request("/api/v1/health/status", { headers: await bearer(ADMIN_ID, "ADMIN") });
    const s = await scrape(app);
    const routes = new Set(s.samples("levelguard_http_requests_total").map((x) => x.labels.route));
    assert(routes.has("/admin/students/:id"), [...routes].join(", "));
    assert(routes.has("unmatched"), "404s and 405s are 'unmatched'");
    assert(
      ![...routes].some((r) => /4242|77|no-such/.test(r)),
      `raw paths leaked: ${[...routes].join(", ")}`,
    );
    assertEquals(
      s.value("levelguard_http_requests_total", {
        method: "GET",
        route: "/admin/students/:id",
        status_class: "3xx",
      }),
      1,
    );
    assertEquals(
      s.value("levelguard_http_request_duration_seconds_count", {
        method: "GET",
        route: "/api/v1/health/status",
        status_class: "2xx",
      }),
      1,
    );
    assertEquals(
      s.value("levelguard_http_requests_total", {
        method: "DELETE",
        route: "unmatched",
        status_class: "4xx",
      }),
      1,
    );
    // The scrape itself is in flight while it is answered.
    assertEquals(s.value("levelguard_http_requests_in_flight"), 1);
  }));

Deno.test("health gauges read the shared state: another instance reports the check this one ran", () =>
  withTestApp(async ({ db, deps, another }) => {
    const { app: other, deps: otherDeps } = await another();
    // As main.ts does on a server: check events from other instances refresh the status at once.
    assert(await otherDeps.events.listen(db.sql));
    // Before any check: unknown, and no rate or age at all (not a 0 that would page someone).
    let s = await scrape(other);
    assertEquals(s.value("levelguard_health_status"), -1);
    assertEquals(s.value("levelguard_consistency_rate"), undefined);
    assertEquals(s.value("levelguard_seconds_since_last_successful_check"), undefined);
    assert(s.families.has("levelguard_consistency_rate"), "the family is declared even while absent");

    const pairs = await seedConsistent(db.sql, 100);
    const { expected } = await breakKnownPairs(db.sql);
    const check = await deps.runner.run("manual");
    assertEquals(check.outcome, "success");
    // The NOTIFY arrives a moment after the check is recorded.
    for (let i = 0; i < 50 && s.value("levelguard_consistency_rate") === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
      s = await scrape(other);
    }
    assertEquals(s.value("levelguard_consistency_rate"), check.consistency_rate!);
    assertEquals(s.value("levelguard_pairs_checked"), pairs);
    assertEquals(
      s.value("levelguard_health_status"),
      { healthy: 0, degraded: 1, critical: 2 }[check.status!],
    );
    for (const [kind, n] of Object.entries(check.counts_by_kind!)) {
      assertEquals(s.value("levelguard_violations", { kind }), n, kind);
    }
    const total = s.samples("levelguard_violations").reduce((a, x) => a + x.value, 0);
    assertEquals(total, check.violation_count!);
    assert(expected.length > 0 && check.violation_count! > 0);
    const age = s.value("levelguard_seconds_since_last_successful_check")!;
    assert(age >= 0 && age < 60, `age ${age}`);
    assertEquals(s.value("levelguard_check_running"), 0);
    // Counted where it ran, not on the other instance.
    assertEquals(s.value("levelguard_checks_total", { trigger: "manual", outcome: "success" }), 0);
  }));

Deno.test("checks, scheduler runs and their durations are counted by trigger and outcome", () =>
  withTestApp(async ({ app, db, deps }) => {
    await seedConsistent(db.sql, 20);
    let s = await scrape(app);
    assertEquals(
      s.value("levelguard_scheduler_runs_total", { result: "failure" }),
      0,
      "known series start at 0",
    );
    await deps.runner.run("schedule");
    await deps.runner.run("manual", 1);
    s = await scrape(app);
    assertEquals(s.value("levelguard_checks_total", { trigger: "schedule", outcome: "success" }), 1);
    assertEquals(s.value("levelguard_checks_total", { trigger: "manual", outcome: "success" }), 1);
    assertEquals(s.value("levelguard_scheduler_runs_total", { result: "success" }), 1);
    // Durations are of full checks only (a one-student check says nothing about the scan).
    assertEquals(s.value("levelguard_check_duration_seconds_count", { trigger: "schedule" }), 1);
    assertEquals(s.value("levelguard_check_duration_seconds_count", { trigger: "manual" }), undefined);
  }));

Deno.test("XP changes (applied, replayed) and the business counters are counted", () =>
  withTestApp(async ({ app, db }) => {
    await addStudents(db, 3);
    const award = async (key: string) =>
      await app.request("/api/v1/specializations/progress/update", {
        method: "POST",
        headers: {
          ...await bearer(INSTRUCTOR_ID, "INSTRUCTOR"),
          "Content-Type": "application/json",
          "Idempotency-Key": key,
        },
        body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 50 }),
      });
    assertEquals((await award("k-1")).status, 200);
    assertEquals((await award("k-1")).status, 200);
    assertEquals((await award("k-2")).status, 200);
    const admin = { ...await bearer(ADMIN_ID, "ADMIN"), "Content-Type": "application/json" };
    await app.request("/api/v1/health/check-now", { method: "POST", headers: admin });
    await db.sql`UPDATE user_licenses SET current_level = current_level + 1 WHERE user_id = 1`;
    const repair = await app.request("/api/v1/health/violations/repair", {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ dry_run: false }),
    });
    assertEquals(repair.status, 200);
    const repaired = (await repair.json()).repaired_pairs;
    assert(repaired >= 1);
    const { token } = await createSession(db.sql, ADMIN_ID, 600);
    const page = await app.request("/admin/health", { headers: { cookie: `lg_session=${token}` } });
    assertEquals(page.status, 200);
    const part = await app.request("/admin/health", {
      headers: { cookie: `lg_session=${token}`, "hx-request": "true", "hx-target": "live" },
    });
    assertEquals(part.status, 200);

    const s = await scrape(app);
    assertEquals(s.value("levelguard_xp_changes_total", { result: "applied" }), 2);
    assertEquals(s.value("levelguard_xp_changes_total", { result: "replayed" }), 1);
    assertEquals(s.value("levelguard_manual_checks_total"), 1);
    assertEquals(s.value("levelguard_violations_repaired_total"), repaired);
    assertEquals(
      s.value("levelguard_dashboard_views_total"),
      1,
      "a full page is a view; its refreshes are not",
    );
    assertEquals(s.value("levelguard_dashboard_live_streams"), 0);
  }));

Deno.test("a shared rate-limit counter that cannot reach the database is counted as a background error", () =>
  withTestApp(async ({ another }) => {
    const url = `postgres://nobody@127.0.0.1:${closedPort()}/none`;
    const sql = postgres(url, { max: 1, connect_timeout: 1 });
    try {
      const { app } = await another({
        sql,
        url,
        env: { RATE_LIMIT_STORE: "postgres", RATE_LIMIT_PER_MINUTE: "5" },
      });
      // The contract needs no database: the request passes, unlimited, and the failure is counted.
      const res = await capturingStderr(async () => await app.request("/api/v1/openapi.json"));
      assertEquals(res.result.status, 200);
      await res.result.body?.cancel();
      const s = await scrape(app);
      assertEquals(s.value("levelguard_background_errors_total", { task: "rate_limit_store" }), 1);
      assertEquals(s.value("levelguard_background_errors_total", { task: "request_stats" }), 0);
    } finally {
      // Bounded: a query still waiting out postgres.js's reconnect backoff would hold end() forever.
      await sql.end({ timeout: 1 });
    }
  }));

Deno.test("requests refused because the database is down are counted as database errors", () =>
  withTestApp(async ({ another }) => {
    const url = `postgres://nobody@127.0.0.1:${closedPort()}/none`;
    const sql = postgres(url, { max: 1, connect_timeout: 1 });
    try {
      const { app } = await another({ sql, url });
      const res = await app.request("/api/v1/health/status", { headers: await bearer(ADMIN_ID, "ADMIN") });
      assertEquals(res.status, 503);
      await res.body?.cancel();
      const s = await scrape(app);
      assertEquals(s.value("levelguard_database_errors_total", { kind: "down" }), 1);
      assertEquals(
        s.value("levelguard_http_requests_total", {
          method: "GET",
          route: "/api/v1/health/status",
          status_class: "5xx",
        }),
        1,
      );
    } finally {
      // Bounded: a query still waiting out postgres.js's reconnect backoff would hold end() forever.
      await sql.end({ timeout: 1 });
    }
  }));

Deno.test("process metrics work under Deno: memory, heap, a real event-loop delay; dead collectors left out", () =>
  withTestApp(async ({ app }) => {
    await scrape(app);
    // Block the loop: the next window's maximum delay shows it.
    const until = performance.now() + 120;
    while (performance.now() < until) { /* busy */ }
    await new Promise((r) => setTimeout(r, 30));
    const s = await scrape(app);
    assert(s.value("process_resident_memory_bytes")! > 10_000_000);
    assert(s.value("nodejs_heap_size_used_bytes")! > 1_000_000);
    const max = s.value("nodejs_eventloop_lag_max_seconds")!;
    assert(max >= 0.08, `event-loop max delay ${max}`);
    assert(s.value("nodejs_eventloop_lag_p50_seconds")! <= max);
    for (const gone of ["nodejs_gc_duration_seconds", "nodejs_active_handles", "nodejs_version_info"]) {
      assert(!s.families.has(gone), `${gone} is exposed`);
    }
    assertEquals(s.samples("levelguard_build_info").length, 1);
    assertMatch(s.samples("levelguard_build_info")[0].labels.version, /^\d+\.\d+\.\d+$/);
    assertEquals(s.value("levelguard_db_connections", { state: "busy" }), 0);
  }));

Deno.test({
  name: "promtool check metrics accepts a real scrape",
  ignore: !await hasPromtool(),
  fn: () =>
    withTestApp(async ({ app, db, deps }) => {
      await seedConsistent(db.sql, 20);
      await deps.runner.run("schedule");
      await app.request("/api/v1/health/status", { headers: await bearer(ADMIN_ID, "ADMIN") });
      const text = (await scrape(app)).text;
      const child = new Deno.Command("promtool", {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      })
        .spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(text));
      await writer.close();
      const out = await child.output();
      const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assertEquals(said.trim(), "", `promtool check metrics: ${said}`);
      assert(out.success);
    }),
});

async function hasPromtool(): Promise<boolean> {
  try {
    return (await new Deno.Command("promtool", { args: ["--version"], stdout: "null", stderr: "null" })
      .output())
      .success;
  } catch {
    return false;
  }
}

Deno.test("every metric an alert rule or a Grafana panel uses exists in a real scrape", () =>
  withTestApp(async ({ app, db, deps }) => {
    await seedConsistent(db.sql, 20);
    await deps.runner.run("schedule");
    const s = await scrape(app);
    const missing = [...await metricsUsedByOps()].filter(([name]) => !s.families.has(name));
    assertEquals(missing, [], "used by ops/ but not exposed");
  }));

Deno.test("every runbook link of the alert rules lands on a heading of docs/runbooks.md", async () => {
  const runbooks = await Deno.readTextFile(new URL("../docs/runbooks.md", import.meta.url));
  // GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
  const anchors = new Set(
    [...runbooks.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      m[1].toLowerCase().replace(/[^\w\- ]/g, "").replaceAll(" ", "-")
    ),
  );
  const wanted = await runbookAnchors();
  assert(wanted.length >= 9, `only ${wanted.length} runbook links`);
  assertEquals(wanted.filter((a) => !anchors.has(a)), []);
});

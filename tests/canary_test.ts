/**
 * The canary rollout: verdicts at the plan's thresholds, stable buckets, the
 * rollout API and its audit, figures shared across instances, `advance`'s
 * refusals, and the automatic rollback (once, with two instances).
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { advanceRefusal, advanceRollout } from "../lib/canary/advance.ts";
import { inRollout, rolloutBucket } from "../lib/canary/bucket.ts";
import {
  CANARY_RULES,
  judgeMetric,
  type MetricVerdict,
  nextStep,
  overallVerdict,
} from "../lib/canary/plan.ts";
import { canaryReport } from "../lib/canary/verdict.ts";
import { LATENCY_BOUNDS_MS, quantileMs } from "../lib/canary/request_stats.ts";
import { rolloutState, setRollout } from "../lib/canary/rollout.ts";
import type { Sql } from "../lib/db.ts";
import { createSession } from "../lib/sessions.ts";
import { bearer, type TestApp, withTestApp } from "./_fixture.ts";
import { seedConsistent } from "./_integrity.ts";
import { runScript } from "./_process.ts";
import { addStudents, ADMIN_ID } from "./_students.ts";

const rule = (name: string) => CANARY_RULES.find((r) => r.name === name)!;

Deno.test("each metric's verdict follows the plan's baseline and threshold", () => {
  const cases: [string, number | null, MetricVerdict][] = [
    ["consistency_rate", 1, "proceed"],
    ["consistency_rate", 0.995, "proceed"],
    ["consistency_rate", 0.99, "investigate"],
    ["consistency_rate", 0.98, "investigate"],
    ["consistency_rate", 0.979, "rollback"],
    ["api_p95_ms", 20, "proceed"],
    ["api_p95_ms", 120, "proceed"],
    ["api_p95_ms", 200, "proceed"],
    ["api_p95_ms", 201, "investigate"],
    ["api_p95_ms", 5000, "investigate"],
    ["error_rate", 0, "proceed"],
    ["error_rate", 0.001, "proceed"],
    ["error_rate", 0.005, "investigate"],
    ["error_rate", 0.01, "investigate"],
    ["error_rate", 0.0101, "rollback"],
    ["scheduler_success_rate", 1, "proceed"],
    ["scheduler_success_rate", 0.995, "investigate"],
    ["scheduler_success_rate", 0.99, "investigate"],
    ["scheduler_success_rate", 0.98, "rollback"],
    ["error_rate", null, "no_data"],
  ];
  for (const [name, value, expected] of cases) {
    assertEquals(judgeMetric(rule(name), value), expected, `${name} = ${value}`);
  }
  assertEquals(overallVerdict(["proceed", "proceed", "proceed", "proceed"]), "proceed");
  assertEquals(overallVerdict(["proceed", "investigate", "proceed", "proceed"]), "investigate");
  assertEquals(overallVerdict(["proceed", "no_data", "proceed", "proceed"]), "investigate");
  assertEquals(overallVerdict(["investigate", "rollback", "no_data", "proceed"]), "rollback");
  assertEquals([nextStep(0), nextStep(5), nextStep(10), nextStep(50), nextStep(100)], [5, 25, 25, 100, null]);
});

Deno.test("buckets are stable and proportional: within one point of the target over 10,000 admin ids", () => {
  const ids = Array.from({ length: 10_000 }, (_, i) => 100_000 + i * 7);
  for (const percent of [1, 5, 25, 50, 75, 99]) {
    const share = ids.filter((id) => inRollout(id, percent)).length / 100;
    assert(Math.abs(share - percent) <= 1, `${percent} %: ${share} %`);
  }
  // Widening keeps everyone who was in; the same id always lands in the same bucket.
  for (const id of ids) {
    if (inRollout(id, 5)) assert(inRollout(id, 25) && inRollout(id, 50), `id ${id} left the rollout`);
    assertEquals(rolloutBucket(id), rolloutBucket(id));
  }
  assertEquals(ids.filter((id) => inRollout(id, 0)).length, 0);
  assertEquals(ids.filter((id) => inRollout(id, 100)).length, ids.length);
});

Deno.test("the p95 of the shared latency histogram is interpolated within its bucket", () => {
  const buckets = Array(LATENCY_BOUNDS_MS.length + 1).fill(0);
  assertEquals(quantileMs(buckets, 0.95), null);
  buckets[2] = 100; // 100 requests in (10, 25] ms
  assertEquals(quantileMs(buckets, 0.95), 10 + 15 * 0.95);
  buckets[LATENCY_BOUNDS_MS.length] = 900; // and 900 slower than 5 s
  assertEquals(quantileMs(buckets, 0.95), 5000);
});

/** An admin whose bucket is inside (or outside) a rollout of `percent`. */
async function adminAt(sql: Sql, inside: boolean, percent: number, from = 200_000): Promise<number> {
  let id = from;
  while (inRollout(id, percent) !== inside) id++;
  await sql`INSERT INTO users (id, email, hashed_password, role)
    VALUES (${id}, ${`admin${id}@test.example`}, 'unused', 'ADMIN')`;
  return id;
}

async function put(app: TestApp["app"], body: unknown, userId = ADMIN_ID) {
  return await app.request("/api/v1/admin/rollout", {
    method: "PUT",
    headers: { ...await bearer(userId, "ADMIN"), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("PUT /api/v1/admin/rollout sets the percentage and audits who, from, to and why; bad input is 400", () =>
  withTestApp(async ({ app, db }) => {
    await addStudents(db, 1);
    const fresh =
      await (await app.request("/api/v1/admin/rollout", { headers: await bearer(ADMIN_ID, "ADMIN") }))
        .json();
    assertEquals(fresh, { percent: 100, last_change: null }, "a fresh install starts at 100 %");
    const res = await put(app, { percent: 5, reason: "canary start" });
    assertEquals(res.status, 200);
    const body = await res.json();
    assertEquals([body.percent, body.last_change.from, body.last_change.to], [5, 100, 5]);
    assertEquals([body.last_change.actor, body.last_change.actor_id], ["admin@test.example", ADMIN_ID]);
    assertEquals([body.last_change.reason, body.last_change.source], ["canary start", "api"]);
    const [audit] = await db.sql`SELECT actor_id, details FROM audit_log WHERE action = 'rollout.set'`;
    assertEquals(audit.actor_id, ADMIN_ID);
    assertEquals(audit.details.from, 100);

    for (const bad of [{ percent: 101 }, { percent: -1 }, { percent: 5.5 }, { percent: "5" }, {}]) {
      const refused = await put(app, bad);
      assertEquals(refused.status, 400, JSON.stringify(bad));
      const problem = await refused.json();
      assertEquals(problem.errors[0].field, "percent");
    }
    const student = await app.request("/api/v1/admin/rollout", {
      method: "PUT",
      headers: { ...await bearer(1, "STUDENT"), "Content-Type": "application/json" },
      body: JSON.stringify({ percent: 0 }),
    });
    assertEquals(student.status, 403);
    assertEquals((await rolloutState(db.sql)).percent, 5, "refused changes wrote nothing");
    assertEquals((await db.sql`SELECT count(*)::int AS n FROM audit_log`)[0].n, 1);
  }));

Deno.test("the canary's request figures are shared: another instance judges this one's requests", () =>
  withTestApp(async ({ app, db, deps, another }) => {
    await addStudents(db, 1);
    assert(!inRollout(ADMIN_ID, 50));
    assertEquals((await put(app, { percent: 50 })).status, 200);
    const inside = await adminAt(db.sql, true, 50);
    const outside = await adminAt(db.sql, false, 50, inside + 1);
    for (let i = 0; i < 20; i++) {
      await app.request("/api/v1/health/status", { headers: await bearer(inside, "ADMIN") });
    }
    for (let i = 0; i < 7; i++) {
      await app.request("/api/v1/health/status", { headers: await bearer(outside, "ADMIN") });
    }
    await deps.requestStats.flush();
    const b = await another();
    const res = await b.app.request("/api/v1/health/canary?window=15m", {
      headers: await bearer(inside, "ADMIN"),
    });
    assertEquals(res.status, 200);
    const report = await res.json();
    const metric = (name: string) => report.metrics.find((m: { name: string }) => m.name === name);
    // The 20 of the admin in the rollout, not the 7 of the one outside (nor the canary request itself,
    // which is recorded after it is answered).
    assertEquals(metric("error_rate").samples, 20);
    assertEquals(metric("error_rate").value, 0);
    assert(
      metric("api_p95_ms").value > 0 && metric("api_p95_ms").value <= 200,
      `${metric("api_p95_ms").value}`,
    );
    assertEquals(report.rollout.percent, 50);
    assertEquals(report.rollout.next_step, 100);
    const [{ n }] = await db.sql<
      { n: number }[]
    >`SELECT sum(requests)::int AS n FROM request_stats WHERE cohort = 'other'`;
    assertEquals(n, 7 + 1, "the 7 and the PUT that set the rollout (its admin is outside)");
  }));

Deno.test("advance refuses while the verdict is not proceed and before the soak time, unless forced", () =>
  withTestApp(async ({ db }) => {
    await seedConsistent(db.sql, 20);
    await setRollout(db.sql, { percent: 5, reason: "start", source: "cli", actorId: null, actor: "test" });
    const report = () => canaryReport(db.sql, { window: "1h", soakHours: 24 });
    // No scheduled check and no canary requests yet: investigate.
    let r = await report();
    assertEquals(r.verdict, "investigate");
    assertMatch(advanceRefusal(r, false)!, /^the verdict is investigate \(.*no scheduled check/);
    assertEquals(advanceRefusal(r, true), null, "--force");

    // Every metric healthy, but the step is an hour old: not soaked.
    await db
      .sql`INSERT INTO integrity_checks (trigger, outcome, status, finished_at, consistency_rate, pairs_checked)
      VALUES ('schedule', 'success', 'healthy', now(), 1, 40)`;
    await db.sql`INSERT INTO request_stats (minute, instance, cohort, requests, errors, latency_buckets)
      VALUES (date_trunc('minute', now()), 'test', 'canary', 100, 0, '{90,10,0,0,0,0,0,0,0,0,0}')`;
    await db.sql`UPDATE audit_log SET at = now() - interval '1 hour' WHERE action = 'rollout.set'`;
    r = await report();
    assertEquals(r.verdict, "proceed", JSON.stringify(r.reasons));
    assertMatch(advanceRefusal(r, false)!, /^the 5 % step started at .* and must soak 24 h/);
    // A day later it may go.
    await db.sql`UPDATE audit_log SET at = now() - interval '25 hours' WHERE action = 'rollout.set'`;
    r = await report();
    assertEquals([r.rollout.soaked, advanceRefusal(r, false)], [true, null]);
    // From 0 % the canary starts without evidence.
    await setRollout(db.sql, { percent: 0, reason: null, source: "cli", actorId: null, actor: "test" });
    await db.sql`DELETE FROM request_stats`;
    r = await report();
    assertEquals([r.verdict, advanceRefusal(r, false), r.rollout.next_step], ["investigate", null, 5]);
  }));

/** Puts the rollout at `percent` with every canary metric healthy and the step soaked. */
async function soakedAt(sql: Sql, percent: number) {
  await setRollout(sql, { percent, reason: "start", source: "cli", actorId: null, actor: "test" });
  await sql`INSERT INTO integrity_checks (trigger, outcome, status, finished_at, consistency_rate, pairs_checked)
    VALUES ('schedule', 'success', 'healthy', now(), 1, 40)`;
  await sql`INSERT INTO request_stats (minute, instance, cohort, requests, errors, latency_buckets)
    VALUES (date_trunc('minute', now()), 'test', 'canary', 100, 0, '{90,10,0,0,0,0,0,0,0,0,0}')`;
  await sql`UPDATE audit_log SET at = now() - interval '25 hours' WHERE action = 'rollout.set'`;
}

const rolloutChanges = async (sql: Sql) =>
  (await sql`SELECT details->>'from' AS f, details->>'to' AS t FROM audit_log
    WHERE action = 'rollout.set' ORDER BY id`).map((c) => `${c.f}->${c.t}`);

Deno.test("two advances at once change the rollout once; an advance judged on an older step writes nothing", () =>
  withTestApp(async ({ db }) => {
    await seedConsistent(db.sql, 20);
    await soakedAt(db.sql, 5);
    const r = await canaryReport(db.sql, { window: "1h", soakHours: 24 });
    assertEquals([r.verdict, advanceRefusal(r, false)], ["proceed", null], JSON.stringify(r.reasons));

    // Both judged the 5 % step; they race on two connections.
    const other = db.connect(1);
    const who = { force: false, reason: "advance", source: "cli" as const, actorId: null, actor: "test" };
    const outcomes = await Promise.all([advanceRollout(db.sql, r, who), advanceRollout(other, r, who)]);
    const made = outcomes.filter((o) => o.change);
    assertEquals(made.map((o) => [o.change!.from, o.change!.to]), [[5, 25]], JSON.stringify(outcomes));
    const lost = outcomes.find((o) => o.refused !== undefined)!;
    assertMatch(
      lost.refused!,
      /^the rollout changed while this advance was being decided \(it was 5 %, it is 25 % now\)/,
    );
    assertEquals(await rolloutChanges(db.sql), ["100->5", "5->25"], "one change, one audit row");

    // Back to 25 through 0: the same percentage, but not the step that was judged.
    const at25 = await canaryReport(db.sql, { window: "1h", soakHours: 24 });
    await setRollout(db.sql, { percent: 0, reason: null, source: "cli", actorId: null, actor: "test" });
    await setRollout(db.sql, { percent: 25, reason: null, source: "cli", actorId: null, actor: "test" });
    const stale = await advanceRollout(db.sql, at25, { ...who, force: true });
    assertMatch(stale.refused ?? "", /it was 25 %, it is 25 % now/);
    const fresh = await advanceRollout(db.sql, await canaryReport(db.sql, { window: "1h", soakHours: 24 }), {
      ...who,
      force: true,
    });
    assertEquals([fresh.change?.from, fresh.change?.to], [25, 50]);
    assertEquals(await rolloutChanges(db.sql), ["100->5", "5->25", "25->0", "0->25", "25->50"]);
  }));

Deno.test("the dashboard's Advance clicked twice at once advances once; the other click gets 409", () =>
  withTestApp(async ({ app, db }) => {
    await seedConsistent(db.sql, 20);
    const admin = await adminAt(db.sql, true, 5);
    await soakedAt(db.sql, 5);
    const { token, csrfToken } = await createSession(db.sql, admin, 600);
    const advance = () =>
      app.request("http://localhost/admin/rollout", {
        method: "POST",
        headers: {
          cookie: `lg_session=${token}`,
          origin: "http://localhost",
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ _csrf: csrfToken, action: "advance" }),
      });
    const responses = await Promise.all([advance(), advance()]);
    const statuses = responses.map((r) => r.status).sort();
    assertEquals(statuses, [303, 409]);
    const refused = await responses.find((r) => r.status === 409)!.text();
    assertMatch(refused, /Not advanced: (the rollout changed while|the 25 % step started)/);
    assertEquals(await rolloutChanges(db.sql), ["100->5", "5->25"]);
  }));

Deno.test("deno task canary: status and evaluate exit by verdict, advance refuses in one line, set audits", () =>
  withTestApp(async ({ db, logDir }) => {
    await seedConsistent(db.sql, 20);
    const env = { DATABASE_URL: db.url, LOG_DIR: logDir, USER: "operator" };
    const status = await runScript("tasks/canary.ts", ["status"], env);
    assertEquals(status.code, 3, status.stderr);
    assertMatch(
      status.stdout,
      /^rollout: 100 % of admins, never changed since installation; at the last step/,
    );
    const set = await runScript("tasks/canary.ts", ["set", "5", "--reason", "canary start"], env);
    assertEquals([set.code, set.stdout.trim()], [0, "rollout: 100 % -> 5 % (by cli:operator: canary start)"]);
    const refused = await runScript("tasks/canary.ts", ["advance"], env);
    assertEquals(refused.code, 1);
    assertEquals(refused.stderr.trim().split("\n").length, 1, refused.stderr);
    assertMatch(refused.stderr, /^canary: not advanced: the verdict is investigate/);
    const forced = await runScript("tasks/canary.ts", ["advance", "--force"], env);
    assertEquals([forced.code, forced.stdout.trim()], [
      0,
      "rollout: 5 % -> 25 % (by cli:operator: advance (canary investigate, forced))",
    ]);
    const bad = await runScript("tasks/canary.ts", ["set", "250"], env);
    assertEquals(bad.code, 2);
    const changes = await db
      .sql`SELECT details->>'from' AS f, details->>'to' AS t FROM audit_log ORDER BY id`;
    assertEquals(changes.map((c) => `${c.f}->${c.t}`), ["100->5", "5->25"]);
  }));

/** A webhook receiver keeping the bodies it got. */
function receiver() {
  const bodies: { event: string; text: string; rollout_before?: number }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    bodies.push(await req.json());
    return new Response(null, { status: 204 });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/hook`, bodies, close: () => server.shutdown() };
}

Deno.test("CANARY_AUTO_ROLLBACK: an induced error rate rolls back once, with two instances, and notifies once", async () => {
  const hook = receiver();
  try {
    const env = { CANARY_AUTO_ROLLBACK: "1", ALERT_WEBHOOK_URLS: hook.url };
    await withTestApp({ env }, async ({ app, db, deps, another }) => {
      await seedConsistent(db.sql, 30);
      await setRollout(db.sql, {
        percent: 50,
        reason: "canary",
        source: "cli",
        actorId: null,
        actor: "test",
      });
      const b = await another({ env });
      const inside = await adminAt(db.sql, true, 50);
      const headers = await bearer(inside, "ADMIN");
      // Healthy requests on both instances, then the database breaks under one endpoint: 500s.
      for (let i = 0; i < 30; i++) await b.app.request("/api/v1/health/status", { headers });
      await db.sql`ALTER TABLE integrity_checks RENAME TO integrity_checks_away`;
      for (let i = 0; i < 5; i++) {
        const res = await app.request("/api/v1/health/metrics", { headers });
        assertEquals(res.status, 500);
      }
      await db.sql`ALTER TABLE integrity_checks_away RENAME TO integrity_checks`;
      await b.deps.requestStats.flush();

      // A check on each instance, one after the other: the first one's evaluation rolls back.
      await deps.runner.run("manual");
      await b.deps.runner.run("manual");
      await Promise.all([deps.autoRollback.settled(), b.deps.autoRollback.settled()]);
      await Promise.all([deps.notifier.settled(5000), b.deps.notifier.settled(5000)]);

      const state = await rolloutState(db.sql);
      assertEquals(state.percent, 0);
      assertEquals([state.last_change?.source, state.last_change?.from], ["auto-rollback", 50]);
      assertMatch(
        state.last_change!.reason!,
        /^automatic rollback: error_rate 14\.29 % is above the threshold 1\.00 %/,
      );
      const rollbacks = await db.sql`SELECT 1 FROM audit_log WHERE details->>'source' = 'auto-rollback'`;
      assertEquals(rollbacks.length, 1, "rolled back once");
      const sent = hook.bodies.filter((e) => e.event === "levelguard.rollback");
      assertEquals(sent.length, 1, "announced once");
      assertMatch(sent[0].text, /^Levelguard rollback: the health dashboard went from 50 % of admins to 0 %/);
      assertEquals(sent[0].rollout_before, 50);

      // Later checks find it at 0 and leave it there.
      await b.deps.runner.run("manual");
      await b.deps.autoRollback.settled();
      assertEquals((await db.sql`SELECT 1 FROM audit_log WHERE action = 'rollout.set'`).length, 2);
    });
  } finally {
    await hook.close();
  }
});

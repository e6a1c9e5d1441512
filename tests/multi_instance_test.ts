/**
 * Three real Levelguard processes on one database: what must happen once
 * happens once (migrations, scheduled checks, status notifications, the
 * canary's rollback), what is shared is shared (the rate limit, sign-in
 * throttling, live check events, the status), and an instance that dies holding the scan lock does
 * not stop the others. tests/run.ts runs this file a second time through
 * PgBouncer in transaction pooling, where instances get DATABASE_DIRECT_URL
 * (for LISTEN and the scan lock) unless a test says otherwise.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { SCAN_LOCK_KEY } from "../lib/integrity/scan_lock.ts";
import { readMigrations } from "../lib/migrate.ts";
import { createSession } from "../lib/sessions.ts";
import { hasServer, pooledPort } from "./_db.ts";
import { dropLicenses } from "./_integrity.ts";
import {
  adminInRollout,
  blockScans,
  checkCounts,
  type Deployment,
  EventStream,
  type Instance,
  scanLockHeld,
  until,
  webhookReceiver,
  withDeployment,
} from "./_instances.ts";
import { loadToken } from "./_load.ts";
import { parseScrape } from "./_prom.ts";

/** Real processes and sockets: the sanitizers cannot follow them. */
const PROCESSES = { ignore: !hasServer, sanitizeOps: false, sanitizeResources: false };
const SCHEDULE_THAT_NEVER_FIRES = { SCAN_ENABLED: "1", SCAN_CRON: "0 0 1 1 *" };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GET /api/v1/health/status on an instance, as JSON. */
async function statusOf(instance: Instance) {
  const res = await instance.api("/api/v1/health/status");
  const body = await res.json();
  assertEquals(res.status, 200, `${JSON.stringify(body)}\n${instance.lines.slice(-5).join("\n")}`);
  return body;
}

/** How many sessions wait for the scan lock (instances whose manual check waits for another's). */
async function scanLockWaiters(d: Deployment): Promise<number> {
  const [row] = await d.direct<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_locks
    WHERE locktype = 'advisory' AND NOT granted AND objid = ${SCAN_LOCK_KEY}
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
  return row.n;
}

/** Ids of the full checks recorded as running. */
async function runningChecks(d: Deployment): Promise<number[]> {
  const rows = await d.direct<{ id: number }[]>`
    SELECT id FROM integrity_checks WHERE outcome = 'running' AND scope_user_id IS NULL ORDER BY id`;
  return rows.map((r) => Number(r.id));
}

Deno.test({
  ...PROCESSES,
  name:
    "three instances starting at once on an empty database all become ready and apply each migration once",
}, () =>
  withDeployment({ empty: true }, async (d) => {
    const instances = await d.start(3);
    const files = (await readMigrations()).map((m) => m.name);
    const rows = await d.db.sql<{ name: string }[]>`SELECT name FROM schema_migrations ORDER BY name`;
    assertEquals(rows.map((r) => r.name), files);
    // Each file was applied by exactly one of them (the others found it done under the lock).
    const appliedBy = instances.map((i) =>
      i.logs().filter((l) => l.msg === "migrations applied").flatMap((l) => l.applied as string[])
    );
    assertEquals(appliedBy.flat().sort(), files, JSON.stringify(appliedBy));
    for (const instance of instances) {
      const ready = await fetch(`${instance.url}/readyz`);
      assertEquals([ready.status, await ready.json()], [200, { status: "ready" }]);
    }
  }));

Deno.test({
  ...PROCESSES,
  name:
    "three instances starting together with the schedule on run one startup check: one success, two skipped",
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(30);
    // The first to take the scan lock stays in its check until all three have started and decided.
    const release = await blockScans(d.direct);
    let instances: Instance[] = [];
    try {
      instances = await d.start(3, SCHEDULE_THAT_NEVER_FIRES);
      await until(
        "two instances record a skipped startup check",
        async () => (await checkCounts(d.db.sql))["startup/skipped"] === 2,
      );
    } finally {
      await release();
    }
    await until(
      "the third finishes its check",
      async () => (await checkCounts(d.db.sql))["startup/success"] === 1,
    );
    assertEquals(await checkCounts(d.db.sql), { "startup/skipped": 2, "startup/success": 1 });
    const ranIt = (i: Instance) =>
      i.logs().some((l) => l.msg === "integrity check finished" && l.outcome === "success");
    await until("the instance that ran it logs it", () => instances.some(ranIt));
    assertEquals(instances.filter(ranIt).length, 1, "one instance ran the check");
  }));

// Startup runs, like scheduled ones, skip when another instance's startup check just ran.
Deno.test({
  ...PROCESSES,
  name: "three instances starting within the same second run one startup check, even when it is quick",
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(30);
    await d.start(3, SCHEDULE_THAT_NEVER_FIRES);
    await until("all three have decided", async () => {
      const counts = await checkCounts(d.db.sql);
      return (counts["startup/success"] ?? 0) + (counts["startup/skipped"] ?? 0) === 3;
    });
    assertEquals(await checkCounts(d.db.sql), { "startup/skipped": 2, "startup/success": 1 });
  }));

// Deno.cron fires at most once a minute: two ticks take up to three minutes. LG_SLOW_TESTS=1 runs it.
Deno.test({
  ...PROCESSES,
  name: "three instances on an every-minute cron run one check per tick (the others skip), never overlapping",
  ignore: !hasServer || !Deno.env.get("LG_SLOW_TESTS"),
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(30);
    const instances = await d.start(3, { SCAN_ENABLED: "1", SCAN_CRON: "* * * * *" });
    const scheduled = () =>
      d.db.sql<{ outcome: string; started_at: Date }[]>`
        SELECT outcome, started_at FROM integrity_checks
        WHERE trigger = 'schedule' AND outcome <> 'running' ORDER BY started_at, id`;
    await until("two ticks are handled by all three", async () => (await scheduled()).length >= 6, 180_000);
    await Promise.all(instances.map((i) => i.stop()));

    // One tick: rows less than 20 s apart (every instance fires on its own clock, within a second).
    const ticks: string[][] = [];
    let last = -Infinity;
    for (const row of await scheduled()) {
      const at = row.started_at.getTime();
      if (at - last > 20_000) ticks.push([]);
      ticks.at(-1)!.push(row.outcome);
      last = at;
    }
    assertEquals(ticks.slice(0, 2).map((t) => t.sort()), [
      ["skipped", "skipped", "success"],
      ["skipped", "skipped", "success"],
    ]);
    // No two full checks (startup or scheduled) ever ran at the same time.
    const runs = await d.db.sql<{ id: number; started_at: Date; finished_at: Date }[]>`
      SELECT id, started_at, finished_at FROM integrity_checks
      WHERE scope_user_id IS NULL AND outcome IN ('success', 'failure') ORDER BY started_at`;
    for (let i = 1; i < runs.length; i++) {
      assert(
        runs[i].started_at >= runs[i - 1].finished_at,
        `check ${runs[i].id} started before check ${runs[i - 1].id} finished`,
      );
    }
  }));

Deno.test({
  ...PROCESSES,
  name:
    "the PostgreSQL rate limit counts one client across three instances: the 31st request is a 429 on each",
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(5);
    const instances = await d.start(3, {
      RATE_LIMIT_STORE: "postgres",
      RATE_LIMIT_PER_MINUTE: "30",
      TRUST_PROXY: "127.0.0.1/32",
    });
    const from = (address: string) => ({ headers: { "X-Forwarded-For": address } });
    for (let n = 1; n <= 30; n++) {
      const res = await instances[n % 3].api("/api/v1/health/status", from("203.0.113.31"));
      await res.body?.cancel();
      assertEquals(res.status, 200, `request ${n}`);
      assertMatch(res.headers.get("RateLimit") ?? "", new RegExp(`;r=${30 - n};`), `request ${n}`);
    }
    for (const [i, instance] of instances.entries()) {
      const res = await instance.api("/api/v1/health/status", from("203.0.113.31"));
      assertEquals(res.status, 429, `instance ${i}`);
      assertEquals(res.headers.get("content-type"), "application/problem+json");
      const retryAfter = Number(res.headers.get("Retry-After"));
      assert(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
        `Retry-After ${retryAfter}`,
      );
      await res.body?.cancel();
    }

    // Another client has its own budget, and a burst of it spread over the three is cut at exactly 30.
    const burst = await Promise.all(Array.from({ length: 45 }, async (_, n) => {
      const res = await instances[n % 3].api("/api/v1/health/status", from("203.0.113.32"));
      await res.body?.cancel();
      return res.status;
    }));
    assertEquals([burst.filter((s) => s === 200).length, burst.filter((s) => s === 429).length], [30, 15]);
  }));

Deno.test({
  ...PROCESSES,
  name:
    "sign-in throttling is one per account across instances and addresses: 110 wrong passwords from 110 " +
    "addresses are 401 five times, then 429 with Retry-After, for the right password too, until the interval " +
    "ends; an unknown email alike",
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(2);
    const instances = await d.start(2, { TRUST_PROXY: "127.0.0.1/32" });
    const login = async (n: number, email: string, password: string) => {
      // Every attempt from another address (nginx on this host appended it), on alternating instances.
      const res = await fetch(`${instances[n % 2].url}/api/v1/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Forwarded-For": `198.51.100.${n % 250}` },
        body: JSON.stringify({ email, password }),
      });
      const body = await res.json();
      return { status: res.status, retryAfter: Number(res.headers.get("retry-after")), detail: body.detail };
    };
    for (const email of ["admin@instances.test", "nobody@instances.test"]) {
      const attempts: Awaited<ReturnType<typeof login>>[] = [];
      for (let n = 1; n <= 110; n++) {
        attempts.push(await login(n, email, n === 6 ? "admin-password" : `guess-${n}`));
      }
      const statuses = attempts.map((a) => a.status);
      // The 6th, right after the free five (for the admin: the right password), is refused.
      assertEquals(statuses.slice(0, 6), [401, 401, 401, 401, 401, 429], email);
      // Refused attempts do not extend the refusal, so on a slow machine one that comes after it
      // ended is judged (and doubles the next): a few at most, every other one refused unjudged.
      assert(statuses.filter((s) => s === 401).length <= 8, `${email}: ${statuses.join(" ")}`);
      assertEquals(statuses.filter((s) => s !== 401 && s !== 429), [], email);
      const refusal = attempts[5];
      assertMatch(refusal.detail, /^Too many failed sign-ins for this account; retry in \d+ s$/);
      assert(refusal.retryAfter >= 1 && refusal.retryAfter <= 30, `Retry-After ${refusal.retryAfter}`);
    }
    // The right password is accepted once the interval is over, on either instance.
    let n = 300;
    await until(
      "the right password is accepted",
      async () => {
        const { status } = await login(n++, "admin@instances.test", "admin-password");
        assert(status === 200 || status === 429, `status ${status}`);
        return status === 200;
      },
      35_000,
      200,
    );
    assertEquals(
      (await login(n, "admin@instances.test", "a typo")).status,
      401,
      "the success reset the count",
    );
  }));

Deno.test({
  ...PROCESSES,
  name: pooledPort
    ? "a dashboard stream on A gets a check finished on B within 2 s and A's status shows it at once; " +
      "an instance without DATABASE_DIRECT_URL polls and shows it within about a second"
    : "a dashboard stream on A gets a check finished on B within 2 s and A's status shows it at once",
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(30);
    // Through PgBouncer a third instance has no direct connection: no LISTEN, it polls.
    const [a, b, polling] = await d.start(pooledPort ? 3 : 2, {}, { direct: [true, true, false] });
    const { token } = await createSession(d.db.sql, d.adminId, 600);
    const cookie = { Cookie: `lg_session=${token}` };
    const stream = await EventStream.open(`${a.url}/admin/health/events`, cookie);
    try {
      const hello = await stream.next(2000);
      assertEquals([hello.event, JSON.parse(hello.data)], ["hello", { live: true }]);
      // Both statuses are read, and kept, before the check.
      assertEquals((await statusOf(a)).last_check, null);
      if (polling) {
        const other = await EventStream.open(`${polling.url}/admin/health/events`, cookie);
        const said = await other.next(2000).finally(() => other.close());
        assertEquals(JSON.parse(said.data), { live: false }, "its dashboards fall back to their timer");
        assertEquals((await statusOf(polling)).last_check, null);
      }

      const check = await b.checkNow();
      const answered = performance.now();
      assertEquals(check.status, 200);
      const id = check.body.id as number;
      const finished = await stream.until(
        (e) => e.event === "check-finished" && JSON.parse(e.data).id === id,
        2000,
      );
      const tookMs = performance.now() - answered;
      assert(tookMs < 2000, `the event came ${tookMs.toFixed(0)} ms after B answered`);
      assertEquals(JSON.parse(finished.data), {
        id,
        outcome: "success",
        trigger: "manual",
        status: "healthy",
      });
      assert(
        stream.seen.some((e) => e.event === "check-started" && JSON.parse(e.data).id === id),
        JSON.stringify(stream.seen),
      );
      // NOTIFY invalidated A's kept status (kept 30 s while it listens): B's check, right away.
      assertEquals((await statusOf(a)).last_check?.id, id);

      if (polling) {
        await until(
          "the polling instance's status shows B's check",
          async () => (await statusOf(polling)).last_check?.id === id,
          1500,
        );
        const lagMs = performance.now() - answered;
        assert(lagMs < 1500, `the polling instance showed it ${lagMs.toFixed(0)} ms after B answered`);
      }
    } finally {
      await stream.close();
    }
  }));

// Through PgBouncer the killed instance's lock is a transaction-scoped lock held either in a
// transaction through PgBouncer (which must roll it back when the client vanishes) or on the
// direct connection; both are tested there.
for (const lockThroughPooler of pooledPort ? [true, false] : [false]) {
  const how = !pooledPort ? "" : lockThroughPooler ? " (its lock through PgBouncer)" : " (its lock direct)";
  Deno.test({
    ...PROCESSES,
    name:
      `killing the instance that holds the scan lock mid-check lets the next check run on another${how}, ` +
      "and the dead run is closed as interrupted",
  }, () =>
    withDeployment({}, async (d) => {
      await d.seed(30);
      const [a, b] = await d.start(2, {}, { direct: [!lockThroughPooler, true] });
      const release = await blockScans(d.direct);
      try {
        const cut = a.checkNow().then(() => "answered", () => "cut");
        await until(
          "A holds the scan lock and its check is running",
          async () => await scanLockHeld(d.direct) && (await runningChecks(d)).length === 1,
        );
        const [dead] = await runningChecks(d);
        await a.stop("SIGKILL");
        assertEquals(await cut, "cut");
        await release();
        await until(
          "the killed instance's scan lock is released",
          async () => !await scanLockHeld(d.direct),
          5000,
        );
        const next = await b.checkNow();
        assertEquals([next.status, next.body.outcome, next.body.trigger], [200, "success", "manual"]);
        assert((next.body.id as number) > dead, "a check of its own");
        const [row] = await d.db.sql`SELECT outcome, error FROM integrity_checks WHERE id = ${dead}`;
        assertEquals(row.outcome, "failure");
        assertMatch(row.error, /^interrupted/);
      } finally {
        await release();
      }
    }));
}

// A manual check that waited for a lock holder which then died runs its own check.
Deno.test({
  ...PROCESSES,
  name: "a manual check waiting for an instance that dies mid-check runs a check of its own",
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(30);
    const [a, b] = await d.start(2);
    const earlier = await b.checkNow(); // history, as in production
    const release = await blockScans(d.direct);
    try {
      const cut = a.checkNow().then(() => "answered", () => "cut");
      await until(
        "A holds the scan lock and its check is running",
        async () => await scanLockHeld(d.direct) && (await runningChecks(d)).length === 1,
      );
      const [dead] = await runningChecks(d);
      const waiting = b.checkNow();
      await until("B waits for the scan lock", async () => await scanLockWaiters(d) === 1);
      await a.stop("SIGKILL");
      await cut;
      await release();
      const next = await waiting;
      assertEquals([next.status, next.body.outcome], [200, "success"], b.lines.slice(-3).join("\n"));
      assert(
        (next.body.id as number) > dead,
        `B answered check ${next.body.id} (the one before was ${earlier.body.id}, the dead one ${dead})`,
      );
      const [row] = await d.db.sql`SELECT outcome FROM integrity_checks WHERE id = ${dead}`;
      assertEquals(row.outcome, "failure", "the dead run is closed");
    } finally {
      await release();
    }
  }));

Deno.test({
  ...PROCESSES,
  name: "a change to critical found by one instance's check is POSTed once, not once per instance",
}, async () => {
  const hook = webhookReceiver();
  try {
    await withDeployment({}, async (d) => {
      await d.seed(100);
      const [a, b, c] = await d.start(3, { ALERT_WEBHOOK_URLS: hook.url });
      assertEquals((await a.checkNow()).body.status, "healthy", "unknown → healthy: no news");
      await dropLicenses(d.db.sql, 5); // about a fifth of the pairs lose their license: critical
      const found = await b.checkNow();
      assertEquals([found.status, found.body.status], [200, "critical"]);
      // The others check too and find it critical as well: no news.
      for (const instance of [c, a]) assertEquals((await instance.checkNow()).body.status, "critical");
      // A graceful stop lets deliveries under way finish: after it, every POST has arrived.
      await Promise.all([a, b, c].map((i) => i.stop("SIGTERM")));

      const sent = hook.of("levelguard.status_changed");
      assertEquals(sent.length, 1, JSON.stringify(hook.bodies));
      assertEquals([sent[0].status_before, sent[0].status_after, sent[0].check_id], [
        "healthy",
        "critical",
        found.body.id,
      ]);
    });
  } finally {
    await hook.close();
  }
});

// A check-now that joined another instance's check neither announces nor counts it again.
Deno.test({
  ...PROCESSES,
  name: "a check three instances asked for at once is announced once and counted once",
}, async () => {
  const hook = webhookReceiver();
  try {
    await withDeployment({}, async (d) => {
      await d.seed(100);
      const instances = await d.start(3, { ALERT_WEBHOOK_URLS: hook.url });
      assertEquals((await instances[0].checkNow()).body.status, "healthy");
      await dropLicenses(d.db.sql, 5);
      // The first to take the scan lock stays in its check until the other two wait for it.
      const release = await blockScans(d.direct);
      let together;
      try {
        const asked = Promise.all(instances.map((i) => i.checkNow()));
        await until("two instances wait for the third's check", async () => await scanLockWaiters(d) === 2);
        await release();
        together = await asked;
      } finally {
        await release();
      }
      const ids = new Set(together.map((r) => r.body.id));
      assertEquals([ids.size, together[0].body.status], [1, "critical"], "one check, joined by the others");
      let counted = 0;
      for (const instance of instances) {
        const scrape = parseScrape(await (await fetch(`${instance.url}/metrics`)).text());
        counted += scrape.value("levelguard_checks_total", { trigger: "manual", outcome: "success" }) ?? 0;
      }
      await Promise.all(instances.map((i) => i.stop("SIGTERM")));
      assertEquals(hook.of("levelguard.status_changed").length, 1, "announced once");
      assertEquals(
        counted,
        2,
        "the healthy check and the critical one, counted once each over the instances",
      );
    });
  } finally {
    await hook.close();
  }
});

Deno.test({
  ...PROCESSES,
  name:
    "with CANARY_AUTO_ROLLBACK on three instances an induced error rate rolls back once and is announced once",
}, async () => {
  const hook = webhookReceiver();
  try {
    await withDeployment({}, async (d) => {
      await d.seed(30);
      const instances = await d.start(3, { CANARY_AUTO_ROLLBACK: "1", ALERT_WEBHOOK_URLS: hook.url });
      const put = await instances[0].api("/api/v1/admin/rollout", {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ percent: 50, reason: "canary step" }),
      });
      assertEquals(put.status, 200);
      await put.body?.cancel();

      // An admin inside the rollout: healthy requests on every instance, then 5xx on every instance
      // while a table the metrics endpoint reads is away.
      const canary = { authorization: await loadToken(await adminInRollout(d.db.sql, true, 50)) };
      for (const instance of instances) {
        for (let n = 0; n < 10; n++) {
          const res = await instance.api("/api/v1/health/status", canary);
          await res.body?.cancel();
          assertEquals(res.status, 200);
        }
      }
      await d.db.sql`ALTER TABLE integrity_checks RENAME TO integrity_checks_away`;
      try {
        for (const instance of instances) {
          for (let n = 0; n < 2; n++) {
            const res = await instance.api("/api/v1/health/metrics", canary);
            await res.body?.cancel();
            assertEquals(res.status, 500);
          }
        }
      } finally {
        await d.db.sql`ALTER TABLE integrity_checks_away RENAME TO integrity_checks`;
      }
      // Every instance writes its request figures every 5 s: after that, each one sees them all.
      await sleep(5500);

      // A check on each instance, one after the other: each judges the canary after its check.
      for (const instance of instances) assertEquals((await instance.checkNow()).status, 200);
      await until("the rollback is announced", () => hook.of("levelguard.rollback").length > 0, 5000);
      await sleep(1000); // room for a second announcement, if there were one
      await Promise.all(instances.map((i) => i.stop("SIGTERM")));

      const changes = await d.db.sql<{ details: { source: string; from: number; to: number } }[]>`
        SELECT details FROM audit_log WHERE action = 'rollout.set' ORDER BY id`;
      assertEquals(changes.map((c) => [c.details.source, c.details.from, c.details.to]), [
        ["api", 100, 50],
        ["auto-rollback", 50, 0],
      ]);
      const announced = hook.of("levelguard.rollback");
      assertEquals(announced.length, 1, JSON.stringify(hook.bodies));
      assertEquals([announced[0].rollout_before, announced[0].rollout_after], [50, 0]);
      const [{ value }] = await d.db.sql`
        SELECT value::int AS value FROM app_settings WHERE key = 'dashboard_rollout_percent'`;
      assertEquals(value, 0);
    });
  } finally {
    await hook.close();
  }
});

/** Status-change notifications to ALERT_WEBHOOK_URLS, against a real local receiver. */
import postgres from "postgres";
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { clientOptions } from "../lib/db.ts";
import { IntegrityRunner } from "../lib/integrity/runner.ts";
import { runScheduled } from "../lib/integrity/schedule.ts";
import { isChange, type StatusChangeEvent, StatusNotifier } from "../lib/notify.ts";
import { hasServer, pooledPort, type TestDatabase } from "./_db.ts";
import { capturingStderr, until, withTestApp } from "./_fixture.ts";
import { dropLicenses, seedConsistent } from "./_integrity.ts";
import { parseScrape } from "./_prom.ts";
import { switchableProxy } from "./_proxy.ts";

/** A webhook receiver: answers each POST with the next status of `script` (then 200), keeps the bodies. */
function receiver(script: (number | "hang")[] = []) {
  const bodies: StatusChangeEvent[] = [];
  const paths: string[] = [];
  const hanging: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    bodies.push(await req.json());
    paths.push(new URL(req.url).pathname);
    const next = script.shift() ?? 200;
    if (next === "hang") await new Promise<void>((r) => hanging.push(r));
    return new Response(null, { status: next === "hang" ? 200 : next });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks/T000/secret-part`,
    bodies,
    paths,
    async close() {
      hanging.forEach((r) => r());
      await server.shutdown();
    },
  };
}

Deno.test("what counts as a change: any move between states, but a first healthy check is no news", () => {
  assert(isChange("healthy", "critical"));
  assert(isChange("critical", "degraded"));
  assert(isChange("healthy", "failing"));
  assert(isChange("failing", "healthy"));
  assert(isChange("unknown", "critical"));
  assert(isChange("unknown", "failing"));
  assert(!isChange("unknown", "healthy"));
  assert(!isChange("critical", "critical"));
  assert(!isChange("failing", "failing"));
});

Deno.test("each status change is POSTed once across two instances, Slack-compatible with structured fields", async () => {
  const hook = receiver();
  try {
    const env = { ALERT_WEBHOOK_URLS: hook.url, PUBLIC_URL: "https://levelguard.example.com/" };
    await withTestApp({ env }, async ({ db, deps, another }) => {
      const b = await another({ env });
      await seedConsistent(db.sql, 100);
      await deps.runner.run("schedule"); // unknown → healthy: no news
      await dropLicenses(db.sql, 5); // about a fifth of the pairs lose their license
      const critical = await b.deps.runner.run("manual"); // on the other instance
      await deps.runner.run("manual"); // still critical: no news
      await db.sql`INSERT INTO user_licenses (user_id, specialization_type, current_level, max_achieved_level)
        SELECT student_id, specialization_id, current_level, current_level FROM specialization_progress p
        WHERE NOT EXISTS (SELECT 1 FROM user_licenses l
          WHERE l.user_id = p.student_id AND l.specialization_type = p.specialization_id)`;
      const healthy = await deps.runner.run("manual");
      await Promise.all([deps.notifier.settled(5000), b.deps.notifier.settled(5000)]);

      assertEquals(hook.bodies.map((e) => [e.status_before, e.status_after, e.check_id]), [
        ["healthy", "critical", critical.id],
        ["critical", "healthy", healthy.id],
      ]);
      const [down] = hook.bodies;
      assertEquals(down.event, "levelguard.status_changed");
      assertEquals(down.consistency_rate, critical.consistency_rate);
      assertEquals(down.violations_by_kind, critical.counts_by_kind);
      assertEquals(down.violation_count, critical.violation_count);
      assertEquals(down.trigger, "manual");
      assertEquals(down.dashboard_url, "https://levelguard.example.com/admin/health");
      assertMatch(
        down.text,
        /^Levelguard is critical \(was healthy\): consistency \d+\.\d\d %, \d+ violation/,
      );
      assert(down.text.includes("<https://levelguard.example.com/admin/health|Open the dashboard>"));
      assertEquals(hook.paths, [new URL(hook.url).pathname, new URL(hook.url).pathname]);
      // Counted by the instance that sent it.
      const sentBy = async (app: typeof b.app) =>
        parseScrape(
          await (await app.request("/metrics", {}, {
            remoteAddr: { hostname: "127.0.0.1", port: 1, transport: "tcp" },
          }))
            .text(),
        ).value("levelguard_notifications_total", { result: "sent" });
      assertEquals([await sentBy(b.app), await sentBy((await another({ env })).app)], [1, 0]);
    });
  } finally {
    await hook.close();
  }
});

Deno.test("checks that start failing and recover are changes too", async () => {
  const hook = receiver();
  try {
    await withTestApp({ env: { ALERT_WEBHOOK_URLS: hook.url } }, async ({ db, deps }) => {
      await seedConsistent(db.sql, 20);
      await deps.runner.run("manual");
      await db.sql`ALTER TABLE specialization_progress RENAME TO specialization_progress_away`;
      const failed = await deps.runner.run("manual");
      assertEquals(failed.outcome, "failure");
      await db.sql`ALTER TABLE specialization_progress_away RENAME TO specialization_progress`;
      await deps.runner.run("manual");
      await deps.notifier.settled(5000);
      assertEquals(hook.bodies.map((e) => [e.status_before, e.status_after]), [
        ["healthy", "failing"],
        ["failing", "healthy"],
      ]);
      assertEquals(hook.bodies[0].error, failed.error);
      assertEquals(hook.bodies[0].dashboard_url, null, "no PUBLIC_URL, no link");
      assertMatch(
        hook.bodies[0].text,
        /^Levelguard is failing \(was healthy\): integrity check #\d+ failed: /,
      );
    });
  } finally {
    await hook.close();
  }
});

Deno.test("a receiver that fails twice then succeeds gets the event on the third attempt, counted once", async () => {
  const hook = receiver([500, 503]);
  try {
    await withTestApp({ env: { ALERT_WEBHOOK_URLS: hook.url } }, async ({ db, deps }) => {
      await seedConsistent(db.sql, 50);
      await dropLicenses(db.sql, 4);
      const check = await deps.runner.run("schedule"); // unknown → critical
      await deps.notifier.settled(10_000);
      assertEquals(hook.bodies.length, 3);
      assert(hook.bodies.every((e) => e.check_id === check.id && e.status_after === "critical"));
      const counts = Object.fromEntries(
        (await deps.metrics.notifications.get()).values.map((v) => [v.labels.result, v.value]),
      );
      assertEquals(counts, { sent: 1, failed: 0 });
    });
  } finally {
    await hook.close();
  }
});

Deno.test("an unreachable or hanging receiver never holds up the check; failures are logged without the secret path", async () => {
  const hook = receiver(["hang", "hang", "hang", "hang"]);
  const refused = `http://127.0.0.1:1/hooks/T000/another-secret`;
  try {
    await withTestApp(async ({ db, deps }) => {
      await seedConsistent(db.sql, 20);
      await dropLicenses(db.sql, 3);
      const failed = { inc: (labels: { result: string }) => counted.push(labels.result) };
      const counted: string[] = [];
      const notifier = new StatusNotifier(db.sql, {
        urls: [new URL(hook.url), new URL(refused)],
        counter: failed as never,
        retryDelaysMs: [10, 10, 10],
        timeoutMs: 150,
      });
      const check = await deps.runner.run("manual");
      const started = performance.now();
      notifier.checkRecorded(check);
      assert(performance.now() - started < 50, "checkRecorded returns at once");
      const { lines } = await capturingStderr(() => notifier.settled(10_000));
      assertEquals(counted, ["failed", "failed"]);
      assertEquals(hook.bodies.length, 4, "four attempts on the hanging receiver");
      const warnings = lines.map((l) => JSON.parse(l)).filter((l) =>
        l.msg === "status notification not delivered"
      );
      assertEquals(
        warnings.map((w) => w.target).sort(),
        ["http://127.0.0.1:1", new URL(hook.url).origin].sort(),
      );
      assert(warnings.some((w) => w.reason === "timed out"));
      assert(!lines.join("\n").includes("secret"), "webhook paths stay out of the logs");
    });
  } finally {
    await hook.close();
  }
});

/** The events a receiver got, as [before, after, check id]. */
const changes = (bodies: StatusChangeEvent[]) =>
  bodies.map((e) => [e.status_before, e.status_after, e.check_id]);

Deno.test({
  name: "runs that could not start (database down) are announced as failing once it is back, by one instance",
  ignore: !hasServer,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const hook = receiver();
  try {
    await withTestApp({ env: { ALERT_WEBHOOK_URLS: hook.url } }, async ({ db, deps, logDir }) => {
      await seedConsistent(db.sql, 20);
      await deps.runner.run("manual"); // unknown → healthy: no news
      // Two instances (runner and notifier wired as lib/services.ts wires them) reach the database
      // through a proxy that the test cuts.
      const proxy = switchableProxy(db.url);
      const pool = (max: number) =>
        postgres(proxy.url, {
          ...clientOptions({ DB_CONNECT_TIMEOUT_S: 2, DB_STATEMENT_TIMEOUT_MS: 30_000 }, max, {
            pooled: Boolean(pooledPort),
          }),
          backoff: () => 0.05,
        });
      // Behind PgBouncer the scan lock needs a client of its own, as lib/services.ts wires it.
      const pools = [0, 1].map(() => ({ sql: pool(3), lockSql: pooledPort ? pool(2) : undefined }));
      try {
        const [a, b] = pools.map(({ sql, lockSql }) => {
          const notifier = new StatusNotifier(sql, { urls: [new URL(hook.url)] });
          const runner = new IntegrityRunner(sql, {
            logDir,
            historyDays: 30,
            lockSql,
            onRecorded: (check) => notifier.checkRecorded(check),
            onClosed: (check) => notifier.checkRecorded(check),
          });
          return { runner, notifier };
        });
        proxy.cut();
        const missed = await capturingStderr(() =>
          Promise.all([runScheduled(a.runner), runScheduled(b.runner)])
        );
        assertEquals(missed.result, [null, null], "neither tick could run");
        proxy.restore();

        const recovered = await runScheduled(a.runner); // writes its failed run, then checks
        await a.notifier.settled(5000);
        // B's failed run is written later, after A's good check: old news, and no second recovery.
        const late = await b.runner.run("manual");
        await b.notifier.settled(5000);

        const [unstarted] = await db.sql<{ id: number; error: string }[]>`
          SELECT id, error FROM integrity_checks WHERE error LIKE 'could not start:%' ORDER BY id LIMIT 1`;
        assertEquals(changes(hook.bodies), [
          ["healthy", "failing", unstarted.id],
          ["failing", "healthy", recovered!.id],
        ]);
        assertEquals(late.status, "healthy");
        assertMatch(
          hook.bodies[0].text,
          /^Levelguard is failing \(was healthy\): integrity check #\d+ failed: could not start: /,
        );
        assertEquals(hook.bodies[0].error, unstarted.error);
        const [{ n }] = await db.sql`
          SELECT count(*)::int AS n FROM integrity_checks WHERE error LIKE 'could not start:%'`;
        assertEquals(n, 2, "both instances recorded their failed run");
      } finally {
        await Promise.all(pools.flatMap((p) => [p.sql, p.lockSql]).map((sql) => sql?.end({ timeout: 1 })));
        proxy.close();
      }
    });
  } finally {
    await hook.close();
  }
});

Deno.test("a check left running by a dead process is announced as failing by the instance that closes it", async () => {
  const hook = receiver();
  try {
    await withTestApp({ env: { ALERT_WEBHOOK_URLS: hook.url } }, async ({ db, deps }) => {
      await seedConsistent(db.sql, 20);
      await deps.runner.run("manual");
      const [dead] = await db.sql<{ id: number }[]>`
        INSERT INTO integrity_checks (trigger, outcome, started_at)
        VALUES ('schedule', 'running', now() - interval '1 minute') RETURNING id`;
      const next = await deps.runner.run("manual");
      await deps.notifier.settled(5000);
      assertEquals(changes(hook.bodies), [["healthy", "failing", dead.id], ["failing", "healthy", next.id]]);
      assertMatch(hook.bodies[0].error!, /^interrupted/);
    });
  } finally {
    await hook.close();
  }
});

/** Holds user_licenses so a scan waits; returns the release. */
async function blockScans(db: TestDatabase) {
  const conn = await db.connect(1).reserve();
  await conn`BEGIN`;
  await conn`LOCK TABLE user_licenses IN ACCESS EXCLUSIVE MODE`;
  return async () => {
    await conn`COMMIT`;
    conn.release();
  };
}

Deno.test({
  name:
    "a check cut by shutdown is announced as failing once, and stays failed when its scan ends afterwards",
  ignore: !hasServer,
}, async () => {
  const hook = receiver();
  try {
    await withTestApp({ env: { ALERT_WEBHOOK_URLS: hook.url } }, async ({ db, deps }) => {
      await seedConsistent(db.sql, 20);
      await deps.runner.run("manual");
      const release = await blockScans(db);
      const scan = deps.runner.run("manual");
      await until("the check is running", async () => {
        const [row] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks WHERE outcome = 'running'`;
        return row.n === 1;
      });
      await capturingStderr(() => deps.runner.stop(100));
      await release();
      const cut = await scan;
      assertEquals(cut.outcome, "failure", "the scan ending later does not overwrite the interruption");
      assertMatch(cut.error!, /^interrupted: the process was stopped/);
      const next = await deps.runner.run("manual");
      await deps.notifier.settled(5000);
      assertEquals(changes(hook.bodies), [["healthy", "failing", cut.id], ["failing", "healthy", next.id]]);
    });
  } finally {
    await hook.close();
  }
});

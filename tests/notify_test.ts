/** Status-change notifications to ALERT_WEBHOOK_URLS, against a real local receiver. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { isChange, type StatusChangeEvent, StatusNotifier } from "../lib/notify.ts";
import { capturingStderr, withTestApp } from "./_fixture.ts";
import { dropLicenses, seedConsistent } from "./_integrity.ts";
import { parseScrape } from "./_prom.ts";

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

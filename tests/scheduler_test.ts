import { assert, assertEquals } from "./_assert.ts";
import { nextCronTime } from "../lib/integrity/cron_next.ts";
import { healthMetrics } from "../lib/integrity/health_metrics.ts";
import { healthReport } from "../lib/integrity/report.ts";
import { IntegrityRunner } from "../lib/integrity/runner.ts";
import { CRON_NAME, runScheduled, scheduleIntegrityScan } from "../lib/integrity/schedule.ts";
import { hasServer, pooledPort, type TestDatabase } from "./_db.ts";
import postgres from "postgres";
import { capturingStderr, type TestApp, until, withTestApp } from "./_fixture.ts";
import { switchableProxy } from "./_proxy.ts";
import { blockScans, scanLockHeld, seedConsistent } from "./_integrity.ts";
import { serverEnv, spawnScript } from "./_process.ts";

const SCHEDULED = { SCAN_ENABLED: "1", SCAN_CRON: "*/2 * * * *" };

/** A runner on its own pool: what a second instance of the app would have (behind a pooler, its lock client too). */
function instance(t: TestApp, pool = 3) {
  const lockSql = pooledPort ? t.db.connect(2) : undefined;
  return new IntegrityRunner(t.db.connect(pool), { logDir: t.logDir, historyDays: 30, lockSql });
}

Deno.test({
  name: "two instances fired by the same tick run one scan: one success, one skipped",
  ignore: !hasServer,
}, () =>
  withTestApp(async (t) => {
    const { db } = t;
    await seedConsistent(db.sql, 100);
    const [a, b] = [instance(t), instance(t)];
    const release = await blockScans(db.connect(1));
    const runs = Promise.all([runScheduled(a), runScheduled(b)]);
    await until("one instance records a skipped run", async () => {
      const [row] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks WHERE outcome = 'skipped'`;
      return row.n === 1;
    });
    await release();
    const results = await runs;
    assertEquals(results.map((r) => r!.outcome).sort(), ["skipped", "success"]);
    const rows = await db.sql`SELECT trigger, outcome FROM integrity_checks ORDER BY outcome`;
    assertEquals([...rows], [
      { trigger: "schedule", outcome: "skipped" },
      { trigger: "schedule", outcome: "success" },
    ]);
    // Skipped because the other instance ran the tick: not a scheduler failure.
    const metrics = await healthMetrics(db.sql, "1h");
    assertEquals(metrics.scheduler, { success: 1, failure: 0, skipped: 1, success_rate: 1 });
  }));

Deno.test({
  name: "an instance whose cron fires a moment after another's finished scan skips that tick",
  ignore: !hasServer,
}, () =>
  withTestApp(async (t) => {
    await seedConsistent(t.db.sql, 30);
    const first = await runScheduled(instance(t));
    const late = await runScheduled(instance(t));
    assertEquals([first!.outcome, late!.outcome], ["success", "skipped"]);
    assertEquals(late!.error, `this tick was already handled by check ${first!.id}`);
    // A manual check is never deduplicated.
    assertEquals((await t.deps.runner.run("manual")).outcome, "success");
  }));

Deno.test({
  name: "a manual check while another instance scans waits for that scan and returns its check",
  ignore: !hasServer,
}, () =>
  withTestApp({ env: SCHEDULED }, async (t) => {
    const { db, config } = t;
    await seedConsistent(db.sql, 50);
    const [a, b] = [instance(t), instance(t)];
    const release = await blockScans(db.connect(1));
    const scheduled = runScheduled(a);
    await until("the scheduled scan holds the lock", () => scanLockHeld(db.sql));
    // Any instance's status sees the other instance's scan running.
    assertEquals((await healthReport(b.sql, config, false)).scan_running, true);
    const manual = b.run("manual");
    await new Promise((r) => setTimeout(r, 100));
    await release();
    const [s, m] = await Promise.all([scheduled, manual]);
    assertEquals(m.id, s!.id);
    assertEquals((await healthReport(b.sql, config, false)).scan_running, false);
    assertEquals(m.outcome, "success");
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks`;
    assertEquals(n, 1);
  }));

Deno.test({
  name: "a scheduled tick while this process is already checking is recorded as skipped",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db, deps }) => {
    await seedConsistent(db.sql, 50);
    const release = await blockScans(db.connect(1));
    const manual = deps.runner.run("manual");
    await until("the manual check holds the lock", () => scanLockHeld(db.sql));
    const tick = await runScheduled(deps.runner);
    assertEquals([tick!.trigger, tick!.outcome], ["schedule", "skipped"]);
    await release();
    assertEquals((await manual).outcome, "success");
  }));

Deno.test("the schedule registers the cron job on SCAN_CRON, checks at startup, and a tick runs a check", () =>
  withTestApp(async ({ db, deps }) => {
    await seedConsistent(db.sql, 30);
    const registered: { name: string; schedule: string; handler: () => Promise<void> }[] = [];
    const { startup } = scheduleIntegrityScan(deps.runner, "*/2 * * * *", {
      cron: (name, schedule, _options, handler) => {
        registered.push({ name, schedule, handler });
      },
    });
    assertEquals(registered.map((r) => [r.name, r.schedule]), [[CRON_NAME, "*/2 * * * *"]]);
    assertEquals((await startup)!.trigger, "startup");
    await registered[0].handler();
    const rows = await db.sql`SELECT trigger, outcome, status FROM integrity_checks ORDER BY id`;
    assertEquals([...rows], [
      { trigger: "startup", outcome: "success", status: "healthy" },
      { trigger: "schedule", outcome: "success", status: "healthy" },
    ]);
  }));

/** Starts `main.ts` on the test database with the schedule on. */
function startApp(db: TestDatabase, logDir: string, cron: string) {
  return spawnScript(
    "main.ts",
    [],
    serverEnv({
      DATABASE_URL: db.url,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_DIR: logDir,
      SCAN_ENABLED: "1",
      SCAN_CRON: cron,
    }),
  );
}

async function stop(child: Deno.ChildProcess) {
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
  const out = new TextDecoder().decode((await child.output()).stdout).trim();
  return out ? out.split("\n").map((l) => JSON.parse(l)) : [];
}

const countWhere = (db: TestDatabase, outcome: string) => async () => {
  const [row] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks WHERE outcome = ${outcome}`;
  return row.n;
};

Deno.test({
  name: "the app registers the cron job at startup when SCAN_ENABLED and checks right away",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db, logDir }) => {
    await seedConsistent(db.sql, 30);
    const child = startApp(db, logDir, "0 0 1 1 *");
    try {
      await until("the startup check is recorded", async () => await countWhere(db, "success")() === 1);
    } finally {
      const lines = await stop(child);
      assertEquals(lines.find((l) => l.msg === "integrity scan scheduled")?.cron, "0 0 1 1 *");
    }
    const rows = await db.sql`SELECT trigger, outcome FROM integrity_checks`;
    assertEquals([...rows], [{ trigger: "startup", outcome: "success" }]);
  }));

Deno.test({
  name: "two app processes starting on one database run one startup scan: the other records a skip",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db, logDir }) => {
    await seedConsistent(db.sql, 30);
    const release = await blockScans(db.connect(1));
    const apps = [startApp(db, logDir, "0 0 1 1 *"), startApp(db, logDir, "0 0 1 1 *")];
    try {
      await until(
        "one app records a skipped startup run",
        async () => await countWhere(db, "skipped")() === 1,
      );
      await release();
      await until("the other finishes its scan", async () => await countWhere(db, "success")() === 1);
    } finally {
      await Promise.all(apps.map(stop));
    }
    const rows = await db.sql`SELECT trigger, outcome FROM integrity_checks ORDER BY outcome`;
    assertEquals([...rows], [{ trigger: "startup", outcome: "skipped" }, {
      trigger: "startup",
      outcome: "success",
    }]);
  }));

// Deno.cron fires at most once a minute, so this one takes up to two minutes:
// run it with LG_SLOW_TESTS=1.
Deno.test({
  name: "two app processes with an every-minute cron run one scan per tick",
  ignore: !hasServer || !Deno.env.get("LG_SLOW_TESTS"),
}, () =>
  withTestApp(async ({ db, logDir }) => {
    await seedConsistent(db.sql, 30);
    const apps = [startApp(db, logDir, "* * * * *"), startApp(db, logDir, "* * * * *")];
    try {
      const ticks = async () => {
        const [row] = await db.sql`
          SELECT count(*)::int AS n FROM integrity_checks WHERE trigger = 'schedule' AND outcome <> 'running'`;
        return row.n;
      };
      await until("one tick is handled by both apps", async () => await ticks() >= 2, 120_000, 500);
    } finally {
      await Promise.all(apps.map(stop));
    }
    const rows = await db.sql`
      SELECT date_trunc('minute', started_at) AS tick, count(*) FILTER (WHERE outcome = 'success')::int AS success,
             count(*) FILTER (WHERE outcome = 'skipped')::int AS skipped
      FROM integrity_checks WHERE trigger = 'schedule' GROUP BY 1`;
    for (const row of rows) assertEquals([row.success, row.skipped], [1, 1]);
  }));

Deno.test({
  name: "a failed scan is recorded as a failure with its cause, and keeps no violations",
  ignore: !hasServer,
}, () =>
  withTestApp(async (t) => {
    const { db } = t;
    await seedConsistent(db.sql, 30);
    const name = new URL(db.url).pathname.slice(1);
    await db.sql.unsafe(`ALTER DATABASE ${name} SET lock_timeout = '200ms'`);
    const release = await blockScans(db.connect(1));
    const impatient = instance(t);
    const check = await runScheduled(impatient);
    await release();
    assertEquals(check!.outcome, "failure");
    assert(check!.error!.includes("lock timeout"), check!.error!);
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM integrity_violations`;
    assertEquals(n, 0);
    const metrics = await healthMetrics(db.sql, "1h");
    assertEquals(metrics.scheduler.success_rate, 0);
  }));

Deno.test("a full check left running by a dead process is closed as a failure by the next one", () =>
  withTestApp(async ({ db, deps }) => {
    const [stale] = await db.sql`
      INSERT INTO integrity_checks (trigger, outcome, started_at) VALUES ('schedule', 'running', now() - interval '1 hour')
      RETURNING id`;
    await runScheduled(deps.runner);
    const [row] = await db.sql`SELECT outcome, error FROM integrity_checks WHERE id = ${stale.id}`;
    assertEquals(row.outcome, "failure");
    assert(row.error.startsWith("interrupted"), row.error);
  }));

Deno.test("next_check_at follows the cron expression in UTC", () => {
  const at = new Date("2026-03-10T12:03:20Z");
  assertEquals(nextCronTime("*/5 * * * *", at)?.toISOString(), "2026-03-10T12:05:00.000Z");
  assertEquals(nextCronTime("* * * * *", at)?.toISOString(), "2026-03-10T12:04:00.000Z");
  assertEquals(nextCronTime("0 0 * * *", at)?.toISOString(), "2026-03-11T00:00:00.000Z");
  assertEquals(nextCronTime("30 2 1 * *", at)?.toISOString(), "2026-04-01T02:30:00.000Z");
  assertEquals(
    nextCronTime("0 9 * * 1-5", new Date("2026-03-13T10:00:00Z"))?.toISOString(),
    "2026-03-16T09:00:00.000Z",
  );
  assertEquals(nextCronTime("0,30 * * * 7", at)?.toISOString(), "2026-03-15T00:00:00.000Z");
  assertEquals(nextCronTime("*/5 * * *", at), null);
  assertEquals(nextCronTime("61 * * * *", at), null);
});

Deno.test({
  name: "a scheduled run while the database is unreachable is recorded as failed once it is back",
  ignore: !hasServer,
  sanitizeResources: false,
  sanitizeOps: false,
}, () =>
  withTestApp(async ({ db, logDir }) => {
    await seedConsistent(db.sql, 20);
    const proxy = switchableProxy(db.url);
    const sql = postgres(proxy.url, { max: 3, connect_timeout: 2, onnotice: () => {}, backoff: () => 0.05 });
    try {
      const runner = new IntegrityRunner(sql, { logDir, historyDays: 30 });
      proxy.cut();
      const { result: missed } = await capturingStderr(() => runScheduled(runner));
      assertEquals(missed, null, "the tick could not run");
      proxy.restore();
      const next = await runScheduled(runner);
      assertEquals(next!.outcome, "success");
      const rows = await db.sql`SELECT trigger, outcome, error FROM integrity_checks ORDER BY id`;
      assertEquals(rows.map((r) => [r.trigger, r.outcome]), [["schedule", "failure"], [
        "schedule",
        "success",
      ]]);
      assert(rows[0].error.startsWith("could not start: "), rows[0].error);
      const metrics = await healthMetrics(db.sql, "1h");
      assertEquals(metrics.scheduler.success_rate, 0.5, "the outage shows in the scheduler's success rate");
    } finally {
      await sql.end({ timeout: 1 });
      proxy.close();
    }
  }));

/**
 * DATABASE_REPLICA_URL with a real streaming replica (pg_basebackup -R) beside
 * a throwaway primary: full checks read one snapshot there and record its
 * replay position; a replica too far behind, or gone, sends the reads back to
 * the primary, and /readyz and /metrics say so.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import postgres from "postgres";
import { loadConfig } from "../lib/config.ts";
import { type Database, openDatabase } from "../lib/db.ts";
import { type Cluster, findPgBin, startCluster, startReplica } from "./support/cluster.ts";
import { violationsCsv } from "../lib/integrity/violations.ts";
import { migrate } from "../lib/migrate.ts";
import { replicaLag } from "../lib/replica.ts";
import { seed } from "../lib/seed.ts";
import { buildServices, type Services } from "../lib/services.ts";
import { issueToken } from "../lib/tokens.ts";
import { appDeps, createApp } from "../routes/app.ts";
import { opsRoutes } from "../routes/ops.ts";
import { parseScrape } from "./_prom.ts";

const bin = await findPgBin();
const canReplicate = bin !== null && (() => {
  try {
    return Deno.statSync(`${bin}/pg_basebackup`).isFile;
  } catch {
    return false;
  }
})();

async function until(what: string, test: () => Promise<boolean>, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting until ${what}`);
}

interface Setup {
  primary: Cluster;
  replica: Cluster;
  primaryUrl: string;
  replicaUrl: string;
  /** A superuser connection to the replica (to pause and resume its replay). */
  standby: postgres.Sql;
  admin: postgres.Sql;
}

/** A primary with seeded data (desyncs included) and its streaming replica, caught up. */
async function setup(): Promise<Setup> {
  const primary = await startCluster(bin!, { fsync: "off", synchronous_commit: "off" });
  const admin = postgres(primary.url, { max: 2, onnotice: () => {} });
  await migrate(admin);
  await seed(admin, {
    students: 400,
    desyncRate: 0.05,
    adminEmail: "admin@replica.test",
    adminPassword: "admin-password",
    studentPassword: "student-password",
  });
  const replica = await startReplica(bin!, primary.url);
  const standby = postgres(replica.url, { max: 1, onnotice: () => {} });
  // Streaming, and caught up with a write made after the base backup.
  await admin`UPDATE app_settings SET updated_at = now()`;
  await caughtUp(admin, standby);
  return { primary, replica, primaryUrl: primary.url, replicaUrl: replica.url, standby, admin };
}

/** Waits until the replica streams and has replayed everything the primary wrote so far. */
async function caughtUp(admin: postgres.Sql, standby: postgres.Sql) {
  // The insert position: with synchronous_commit off the write position can still be behind it.
  const [{ lsn }] = await admin<{ lsn: string }[]>`SELECT pg_current_wal_insert_lsn()::text AS lsn`;
  await until("the replica streams and has caught up", async () => {
    const [row] = await standby<{ behind: boolean }[]>`
      SELECT pg_last_wal_replay_lsn() < ${lsn}::pg_lsn AS behind`.catch(() => [{ behind: true }]);
    const lag = await replicaLag(standby).catch(() => null);
    return !row.behind && lag?.streaming === true && lag.lagS === 0;
  });
}

/** Whether `sql` reads on a standby. */
async function onStandby(sql: postgres.Sql): Promise<boolean> {
  const [{ standby }] = await sql<{ standby: boolean }[]>`SELECT pg_is_in_recovery() AS standby`;
  return standby;
}

async function teardown(s: Setup) {
  await s.standby.end({ timeout: 1 });
  await s.admin.end({ timeout: 1 });
  await s.replica.stop();
  await s.primary.stop();
}

/** The app's services on the primary with the replica, as main.ts wires them. */
async function app(s: Setup, maxLagS: number): Promise<{ db: Database; services: Services; logDir: string }> {
  const logDir = await Deno.makeTempDir({ prefix: "levelguard-replica-logs-" });
  const config = loadConfig({
    DATABASE_URL: s.primaryUrl,
    DATABASE_REPLICA_URL: s.replicaUrl,
    REPLICA_MAX_LAG_S: String(maxLagS),
    DB_CONNECT_TIMEOUT_S: "2",
    LOG_DIR: logDir,
    SCAN_ENABLED: "0",
  });
  const db = await openDatabase(config);
  const services = await buildServices(config, db);
  await services.replica!.start();
  return { db, services, logDir };
}

/** Breaks one consistent pair on the primary (its license goes missing). */
async function breakOne(sql: postgres.Sql) {
  await sql`
    DELETE FROM user_licenses WHERE id = (
      SELECT l.id FROM user_licenses l JOIN specialization_progress p
        ON p.student_id = l.user_id AND p.specialization_id = l.specialization_type
      WHERE p.current_level = l.current_level AND l.max_achieved_level >= l.current_level
      ORDER BY l.id LIMIT 1)`;
}

Deno.test({
  name:
    "a full check reads one snapshot on the replica, records its replay position, and finds what the primary has",
  ignore: !canReplicate,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const s = await setup();
  const { db, services, logDir } = await app(s, 600);
  try {
    assertEquals(services.replica!.state.usable, true);
    const onReplica = await services.runner.run("manual");
    assertEquals([onReplica.outcome, onReplica.read_from], ["success", "replica"]);
    assertEquals(onReplica.timings?.ranges, 2, "two ranges read side by side in one exported snapshot");
    assertMatch(onReplica.replica_lsn!, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert(onReplica.replica_lag_s! >= 0 && onReplica.replica_lag_s! < 600);

    // The same data read on the primary finds exactly the same violations.
    const primaryOnly = await buildServices(loadConfig({ LOG_DIR: logDir, SCAN_ENABLED: "0" }), {
      sql: db.sql,
      probe: db.probe,
    });
    const onPrimary = await primaryOnly.runner.run("manual");
    assertEquals(onPrimary.read_from, "primary");
    assertEquals(onReplica.counts_by_kind, onPrimary.counts_by_kind);
    assertEquals(onReplica.pairs_checked, onPrimary.pairs_checked);
    const violations = (id: number) =>
      db.sql`SELECT kind, student_id, specialization_id, details FROM integrity_violations
        WHERE check_id = ${id} ORDER BY student_id, specialization_id, kind`;
    assertEquals([...await violations(onReplica.id)], [...await violations(onPrimary.id)]);
    assert(onReplica.violation_count! > 0, "the seed left desyncs to find");

    // Proof the data came from the replica: with its replay paused, a new desync on the primary is
    // not seen by a check that reads there (the lag allowance is large), and is by the primary.
    await s.standby`SELECT pg_wal_replay_pause()`;
    await breakOne(s.admin);
    const stale = await services.runner.run("manual");
    assertEquals([stale.read_from, stale.violation_count], ["replica", onReplica.violation_count]);
    const [{ paused }] = await s.standby<
      { paused: string }[]
    >`SELECT pg_last_wal_replay_lsn()::text AS paused`;
    assertEquals(stale.replica_lsn, paused, "the paused replay position");
    assertEquals((await primaryOnly.runner.run("manual")).violation_count, onReplica.violation_count! + 1);
    await s.standby`SELECT pg_wal_replay_resume()`;
    await until("the replica has replayed the change", async () => (await replicaLag(s.standby)).lagS === 0);
    const caughtUp = await services.runner.run("manual");
    assertEquals([caughtUp.read_from, caughtUp.violation_count], ["replica", onReplica.violation_count! + 1]);
  } finally {
    await db.close();
    await teardown(s);
  }
});

Deno.test({
  name: "a replica too far behind, or gone, sends reads back to the primary, and /readyz and /metrics say so",
  ignore: !canReplicate,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const s = await setup();
  const { db, services } = await app(s, 1);
  const ops = opsRoutes({ sql: db.sql, migrations: services.migrations, replica: services.replica });
  const scrape = async () => parseScrape(await services.metrics.scrape());
  try {
    let ready = await (await ops.request("/readyz")).json();
    assertEquals(ready.replica.in_use, true);
    assertEquals((await scrape()).value("levelguard_replica_in_use"), 1);
    assertEquals(await onStandby(services.reads()), true, "heavy reads go to the replica");

    // Replay paused while the primary writes: the replica falls behind the allowance.
    await s.standby`SELECT pg_wal_replay_pause()`;
    await breakOne(s.admin);
    await new Promise((r) => setTimeout(r, 1200));
    await until("the replica is measured behind", async () => !(await services.replica!.check()).usable);
    ready = await (await ops.request("/readyz")).json();
    assertEquals([ready.status, ready.replica.in_use], ["ready", false]);
    assertMatch(ready.replica.reason, /^\d+ s behind \(REPLICA_MAX_LAG_S=1\)$/);
    const m = await scrape();
    assertEquals(m.value("levelguard_replica_in_use"), 0);
    assert(m.value("levelguard_replica_lag_seconds")! >= 1);
    assertEquals(services.reads(), db.sql, "heavy reads went back to the primary");
    const behind = await services.runner.run("manual");
    assertEquals(behind.read_from, "primary");
    await s.standby`SELECT pg_wal_replay_resume()`;
    await until("the replica is usable again", async () => (await services.replica!.check()).usable);

    // The replica stops while it is believed usable: the check falls back to the primary mid-run.
    const before = await services.runner.run("manual");
    assertEquals(before.read_from, "replica");
    await s.replica.halt();
    const after = await services.runner.run("manual");
    assertEquals([after.outcome, after.read_from], ["success", "primary"]);
    assertEquals(after.violation_count, before.violation_count);
    assertEquals(services.replica!.state.usable, false);
    assertMatch(services.replica!.state.reason!, /^unreachable: /);
    ready = await (await ops.request("/readyz")).json();
    assertEquals([ready.status, ready.replica.in_use], ["ready", false]);
    assertEquals((await scrape()).value("levelguard_replica_lag_seconds"), undefined);
  } finally {
    services.replica?.stop();
    await db.close();
    await teardown(s);
  }
});

const TOKEN_KEY = new TextEncoder().encode("replica-test-secret-replica-test-secret");

Deno.test({
  name:
    "with the replica gone, violation pages, metrics windows and the CSV export answer from the primary at once, and /readyz says so",
  ignore: !canReplicate,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const s = await setup();
  const { db, services } = await app(s, 600);
  // No measurement from here on: only the reads themselves can notice the replica is gone.
  services.replica!.stop();
  const http = createApp(await appDeps(services, { tokenKey: TOKEN_KEY }));
  // The seeded admin (tokens speak for a real account, at its epoch: never changed here).
  const [{ id: adminId }] = await s.admin<{ id: number }[]>`SELECT id FROM users WHERE role = 'ADMIN'`;
  const { token } = await issueToken(TOKEN_KEY, { userId: adminId, role: "ADMIN", epoch: 0 }, 600);
  const get = (path: string) => http.request(path, { headers: { Authorization: `Bearer ${token}` } });
  const csv = async () =>
    (await new Response(violationsCsv(services.reads(), {})).text()).trimEnd().split("\n");
  try {
    const check = await services.runner.run("manual");
    assertEquals(check.read_from, "replica");
    await caughtUp(s.admin, s.standby);
    assertEquals(await onStandby(services.reads()), true, "pages read on the replica");
    const page = await (await get("/api/v1/health/violations?limit=50")).json();
    assertEquals([page.check_id, page.total], [check.id, check.violation_count]);
    const window = await (await get("/api/v1/health/metrics?window=1h")).json();
    const rows = await csv();
    assertEquals(rows.length, 1 + check.violation_count!);

    await s.replica.halt();
    assertEquals(services.replica!.state.usable, true, "still believed usable: not measured since");
    // Side by side, each on the replica client it got while the replica was believed usable.
    const [violations, metrics, exported] = await Promise.all([
      get("/api/v1/health/violations?limit=50"),
      get("/api/v1/health/metrics?window=1h"),
      csv(),
    ]);
    assertEquals(violations.status, 200);
    assertEquals(await violations.json(), page, "the same page, read on the primary");
    assertEquals(metrics.status, 200);
    const after = await metrics.json();
    assertEquals([after.checks, after.history.points], [window.checks, window.history.points]);
    assertEquals(exported, rows);

    assertEquals(services.replica!.state.usable, false);
    assertMatch(services.replica!.state.reason!, /^unreachable: /);
    assertEquals(await onStandby(services.reads()), false, "later reads go straight to the primary");
    const ready = await (await get("/readyz")).json();
    assertEquals([ready.status, ready.replica.in_use], ["ready", false]);
    assertEquals(ready.replica.reason, "unreachable", "without the error text");
    assertEquals(parseScrape(await services.metrics.scrape()).value("levelguard_replica_in_use"), 0);
  } finally {
    await db.close();
    await teardown(s);
  }
});

Deno.test({
  name:
    "a replica killed while the check reads its ranges there: the check scans the primary instead and keeps no violation twice",
  ignore: !canReplicate,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const s = await setup();
  const { db, services } = await app(s, 600);
  services.replica!.stop();
  const holder = await s.admin.reserve();
  try {
    const baseline = await services.runner.run("manual");
    assertEquals([baseline.read_from, baseline.timings?.ranges], ["replica", 2]);

    // A lock on the ledger, taken on the primary, is replayed on the replica: there the scan's
    // ranges wait for it in the middle of their reads (their first statements do not read the
    // ledger), with the snapshot taken and the primary's check row written.
    await holder`BEGIN`;
    await holder`LOCK TABLE xp_events IN ACCESS EXCLUSIVE MODE`;
    await until("the replica holds the replayed lock", async () => {
      const [{ n }] = await s.standby<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_locks
        WHERE relation = 'xp_events'::regclass AND mode = 'AccessExclusiveLock' AND granted`;
      return n === 1;
    });
    const running = services.runner.run("manual");
    await until("both ranges wait for the ledger on the replica", async () => {
      const [{ n }] = await s.standby<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE application_name LIKE 'levelguard:%' AND wait_event_type = 'Lock'`;
      return n === 2;
    });
    await s.replica.crash();
    await holder`ROLLBACK`;
    const check = await running;

    assertEquals([check.outcome, check.read_from, check.replica_lsn], ["success", "primary", null]);
    assertEquals(check.violation_count, baseline.violation_count);
    assertEquals(check.counts_by_kind, baseline.counts_by_kind);
    const violations = (id: number) =>
      db.sql`SELECT kind, student_id, specialization_id, details FROM integrity_violations
        WHERE check_id = ${id} ORDER BY student_id, specialization_id, kind`;
    assertEquals([...await violations(check.id)], [...await violations(baseline.id)], "each violation once");
    const [{ stray }] = await db.sql<{ stray: number }[]>`
      SELECT count(*)::int AS stray FROM integrity_violations v JOIN integrity_checks c ON c.id = v.check_id
      WHERE c.outcome <> 'success'`;
    assertEquals(stray, 0, "no check but a successful one keeps violations");
    assertEquals(services.replica!.state.usable, false);
    assertMatch(services.replica!.state.reason!, /^unreachable: /);
  } finally {
    await holder`ROLLBACK`.catch(() => {});
    holder.release();
    await db.close();
    await teardown(s);
  }
});

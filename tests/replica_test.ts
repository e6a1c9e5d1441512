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
import { type Cluster, findPgBin, startCluster, startReplica } from "../lib/dev/cluster.ts";
import { migrate } from "../lib/migrate.ts";
import { replicaLag } from "../lib/replica.ts";
import { seed } from "../lib/seed.ts";
import { buildServices, type Services } from "../lib/services.ts";
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
  // The insert position: with synchronous_commit off the write position can still be behind it.
  const [{ lsn }] = await admin<{ lsn: string }[]>`SELECT pg_current_wal_insert_lsn()::text AS lsn`;
  await until("the replica streams and has caught up", async () => {
    const [row] = await standby<{ behind: boolean }[]>`
      SELECT pg_last_wal_replay_lsn() < ${lsn}::pg_lsn AS behind`.catch(() => [{ behind: true }]);
    const lag = await replicaLag(standby).catch(() => null);
    return !row.behind && lag?.streaming === true && lag.lagS === 0;
  });
  return { primary, replica, primaryUrl: primary.url, replicaUrl: replica.url, standby, admin };
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
    assertEquals(services.reads(), db.replica, "heavy reads go to the replica");

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

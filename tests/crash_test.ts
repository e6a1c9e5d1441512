/**
 * Stopping the server under load. SIGKILL: the database keeps every
 * acknowledged change and no half-written pair. SIGTERM: the server stops
 * accepting, lets the requests it has finish with 200, and exits 0.
 */
import { assert, assertEquals } from "./_assert.ts";
import { seed } from "../lib/seed.ts";
import { hasServer, type TestDatabase } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";
import { desyncs } from "./_integrity.ts";
import { awardLoad, LOAD_SECRET, loadToken, type Sent } from "./_load.ts";
import { startServer } from "./_process.ts";

async function seeded(db: TestDatabase) {
  return await seed(db.sql, {
    students: 50,
    desyncRate: 0,
    adminEmail: "admin@crash.test",
    adminPassword: "admin-password",
    studentPassword: "student-password",
  });
}

/** Every 200's event is in the ledger, and progress, licenses and ledger agree. */
async function nothingLost(db: TestDatabase, sent: Sent[]) {
  const ok = sent.filter((s) => s.status === 200);
  assertEquals(ok.filter((s) => s.eventId === undefined), [], "every 200 names its ledger row");
  const acked = ok.map((s) => s.eventId!);
  assert(acked.length > 20, `the load got going (${acked.length} acknowledged)`);
  const [{ found }] = await db.sql<{ found: number }[]>`
    SELECT count(*)::int AS found FROM xp_events WHERE id = ANY(${acked}::bigint[])`;
  assertEquals(found, new Set(acked).size, "every acknowledged change is in the ledger");
  assertEquals(await desyncs(db.sql), 0, "no half-written pair");
}

function serverEnv(db: TestDatabase, dataDir: string, logDir: string, extra: Record<string, string> = {}) {
  return {
    DATABASE_URL: db.url,
    JWT_SECRET: LOAD_SECRET,
    DATA_DIR: dataDir,
    LOG_DIR: logDir,
    RATE_LIMIT_PER_MINUTE: "0",
    LOG_REQUESTS: "0",
    SCAN_ENABLED: "0",
    ...extra,
  };
}

Deno.test({
  name:
    "SIGKILL in the middle of an update load loses no acknowledged change and leaves no half-written pair",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    const { adminId } = await seeded(db);
    const server = await startServer(serverEnv(db, dataDir, logDir));
    // Awards that hold their transaction open a moment, so some are surely in flight at the kill.
    await db.sql`
      CREATE FUNCTION slow_award() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$`;
    await db
      .sql`CREATE TRIGGER slow_award AFTER INSERT ON xp_events FOR EACH ROW EXECUTE FUNCTION slow_award()`;
    let stop = () => {};
    const load = awardLoad({
      url: server.url,
      authorization: await loadToken(adminId),
      workers: 8,
      students: 50,
      stop: new Promise<void>((r) => stop = r),
    });
    await new Promise((r) => setTimeout(r, 1500));
    // No new request after the kill: its port may go to another test's server at once.
    stop();
    await server.stop("SIGKILL");
    const sent = await load;
    assert(sent.some((s) => s.status === 0), "some requests were cut by the kill");
    await nothingLost(db, sent);
  }));

Deno.test({
  name:
    "SIGTERM in the middle of an update load: requests in flight finish with 200, then the process exits 0",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    const { adminId } = await seeded(db);
    const server = await startServer(serverEnv(db, dataDir, logDir, { SHUTDOWN_GRACE_S: "5" }));
    // Requests that hold a row lock a moment, so some are surely in flight at the signal.
    await db.sql`
      CREATE FUNCTION slow_award() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$`;
    await db
      .sql`CREATE TRIGGER slow_award AFTER INSERT ON xp_events FOR EACH ROW EXECUTE FUNCTION slow_award()`;
    let stop = () => {};
    const load = awardLoad({
      url: server.url,
      authorization: await loadToken(adminId),
      workers: 8,
      students: 50,
      stop: new Promise<void>((r) => stop = r),
    });
    await new Promise((r) => setTimeout(r, 1000));
    const signalledAt = performance.now();
    const exited = server.stop("SIGTERM");
    stop();
    const sent = await load;
    assertEquals(await exited, 0);
    // Sent at least 20 ms before the signal: on loopback the server surely has them (a request
    // still on its way over an idle keep-alive connection the shutdown closes is another matter).
    const received = sent.filter((s) => s.startedAt < signalledAt - 20);
    const inFlight = received.filter((s) => s.startedAt + s.ms > signalledAt);
    assert(inFlight.length > 0, "some requests were in flight at the signal");
    assertEquals(inFlight.map((s) => s.status), inFlight.map(() => 200), "in-flight requests completed");
    assertEquals(received.filter((s) => s.status !== 200), [], "everything received was answered with 200");
    assert(server.lines.some((l) => l.includes('"msg":"stopped"')), server.lines.join("\n"));
    await nothingLost(db, sent);
  }));

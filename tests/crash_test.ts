/**
 * Stopping the server under load. SIGKILL: the database keeps every
 * acknowledged change and no half-written pair. SIGTERM: the server stops
 * accepting, lets the requests it has finish with 200, and exits 0; a full
 * check running then finishes within SHUTDOWN_GRACE_S or is recorded as
 * interrupted, never left 'running', its caller answered 503 with Retry-After
 * and its statements cancelled on the server.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { APPLICATION_NAME } from "../lib/db.ts";
import { seed } from "../lib/seed.ts";
import { hasServer, type TestDatabase } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";
import { desyncs } from "./_integrity.ts";
import { awardLoad, loadToken, type Sent } from "./_load.ts";
import { serverEnv, startServer } from "./_process.ts";

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

Deno.test({
  name:
    "SIGKILL in the middle of an update load loses no acknowledged change and leaves no half-written pair",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    const { adminId } = await seeded(db);
    const server = await startServer(serverEnv({ DATABASE_URL: db.url, DATA_DIR: dataDir, LOG_DIR: logDir }));
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
    const server = await startServer(
      serverEnv({ DATABASE_URL: db.url, DATA_DIR: dataDir, LOG_DIR: logDir, SHUTDOWN_GRACE_S: "5" }),
    );
    // Requests that hold a row lock a moment, so some are surely in flight at the signal.
    await db.sql`
      CREATE FUNCTION slow_award() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$`;
    await db
      .sql`CREATE TRIGGER slow_award AFTER INSERT ON xp_events FOR EACH ROW EXECUTE FUNCTION slow_award()`;
    let stop = () => {};
    const answered: Sent[] = [];
    const load = awardLoad({
      url: server.url,
      authorization: await loadToken(adminId),
      workers: 8,
      students: 50,
      stop: new Promise<void>((r) => stop = r),
      sent: answered,
    });
    // Signalled once the load demonstrably runs (three answers a worker), not after a fixed time: on a
    // slow machine the first answers may take longer than any guess.
    const deadline = Date.now() + 30_000;
    while (answered.filter((s) => s.status === 200).length < 24 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert(answered.filter((s) => s.status === 200).length >= 24, "the load got going before the signal");
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

const GRACE_S = 2;
/** Past the grace period: closing the pool and exiting. */
const EXIT_MARGIN_MS = 1500;

/**
 * A full check that cannot finish on its own (the test holds an exclusive lock on
 * the table it reads), then SIGTERM; the lock goes `releaseAfterMs` after the
 * signal (never: null). Returns the exit code, the time to exit, the check's
 * row and what the check-now request got.
 */
async function sigtermDuringCheck(
  db: TestDatabase,
  dataDir: string,
  logDir: string,
  releaseAfterMs: number | null,
) {
  const { adminId } = await seeded(db);
  const server = await startServer(serverEnv({
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    LOG_DIR: logDir,
    SHUTDOWN_GRACE_S: String(GRACE_S),
  }));
  let release = () => {};
  const released = new Promise<void>((r) => release = r);
  let locked = () => {};
  const isLocked = new Promise<void>((r) => locked = r);
  const holder = db.sql.begin(async (tx) => {
    await tx`LOCK TABLE specialization_progress IN ACCESS EXCLUSIVE MODE`;
    locked();
    await released;
  });
  try {
    await isLocked;
    const checkNow = fetch(`${server.url}/api/v1/health/check-now`, {
      method: "POST",
      headers: { Authorization: await loadToken(adminId) },
    }).then(
      async (res) => ({
        status: res.status,
        type: res.headers.get("content-type"),
        retryAfter: res.headers.get("retry-after"),
        body: await res.json(),
      }),
      () => null,
    );
    // Running, and its scan waits on the lock.
    const deadline = Date.now() + 20_000;
    let id: number | undefined;
    while (Date.now() < deadline) {
      const [row] = await db.sql<{ id: number; waiting: number }[]>`
        SELECT (SELECT max(id) FROM integrity_checks WHERE outcome = 'running')::int AS id,
          (SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock')::int AS waiting`;
      if (row.id && row.waiting > 0) {
        id = row.id;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert(id, "the check started and waits on the lock");
    const signalledAt = performance.now();
    const exited = server.stop("SIGTERM");
    if (releaseAfterMs !== null) setTimeout(release, releaseAfterMs);
    const code = await exited;
    const exitMs = performance.now() - signalledAt;
    // Before the lock goes: a statement of the process left running on the server would still wait on it.
    // (This process's own connections are named levelguard:… too, with another suffix.)
    const [{ left }] = await db.sql<{ left: number }[]>`
      SELECT count(*)::int AS left FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'levelguard:%'
        AND application_name <> ${APPLICATION_NAME} AND state <> 'idle'`;
    release();
    await holder;
    const [check] = await db.sql<{ outcome: string; error: string | null; finished_at: Date | null }[]>`
      SELECT outcome, error, finished_at FROM integrity_checks WHERE id = ${id}`;
    const [{ running }] = await db.sql<{ running: number }[]>`
      SELECT count(*)::int AS running FROM integrity_checks WHERE outcome = 'running'`;
    return { code, exitMs, check, running, left, response: await checkNow, lines: server.lines };
  } finally {
    release();
    await holder.catch(() => {});
    await server.stop("SIGKILL");
  }
}

Deno.test({
  name: "SIGTERM during a full check that ends within SHUTDOWN_GRACE_S: the check finishes, its caller " +
    "gets 200, the process exits 0",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    const out = await sigtermDuringCheck(db, dataDir, logDir, 500);
    assertEquals(out.code, 0, out.lines.join("\n"));
    assert(out.exitMs < GRACE_S * 1000 + EXIT_MARGIN_MS, `exited after ${Math.round(out.exitMs)} ms`);
    assertEquals(out.check.outcome, "success", JSON.stringify(out.check));
    assertEquals(out.response?.status, 200, JSON.stringify(out.response));
    assertEquals(out.running, 0, "no check left running");
  }));

Deno.test({
  name:
    "SIGTERM during a full check still running at the end of SHUTDOWN_GRACE_S: recorded as interrupted, " +
    "its caller answered 503 with Retry-After, its statements cancelled on the server, the process exits 0 " +
    "within the grace period",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    const out = await sigtermDuringCheck(db, dataDir, logDir, null);
    assertEquals(out.code, 0, out.lines.join("\n"));
    assert(out.exitMs < GRACE_S * 1000 + EXIT_MARGIN_MS, `exited after ${Math.round(out.exitMs)} ms`);
    assertEquals(out.check.outcome, "failure", JSON.stringify(out.check));
    assertMatch(out.check.error ?? "", /^interrupted: the process was stopped during the scan/);
    assert(out.check.finished_at, "the interrupted check has its end");
    assertEquals(out.running, 0, "no check left running");
    assert(
      out.lines.some((l) => l.includes("integrity check interrupted by shutdown")),
      out.lines.join("\n"),
    );
    // The request still running at the end of the grace period was answered, not dropped.
    assertEquals(out.response?.status, 503, JSON.stringify(out.response));
    assertEquals(out.response?.type, "application/problem+json");
    assertEquals(out.response?.retryAfter, "5");
    assertMatch(out.response?.body.detail ?? "", /^Levelguard is shutting down/);
    // And the scan does not go on without its process.
    assertEquals(out.left, 0, "no statement of the stopped process left on the server");
  }));

/**
 * The database going away and coming back: every endpoint that needs it (the
 * API and the admin pages) answers 503 problem+json with Retry-After within
 * the connect timeout, the service recovers by itself, and no acknowledged
 * change is lost.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import postgres from "postgres";
import { findPgBin, startCluster } from "./support/cluster.ts";
import { migrate } from "../lib/migrate.ts";
import { seed } from "../lib/seed.ts";
import { createSession } from "../lib/sessions.ts";
import { API_CONTRACT } from "../routes/contract.ts";
import { hasServer } from "./_db.ts";
import { bearer, capturingStderr, closedPort, withTestApp } from "./_fixture.ts";
import { desyncs } from "./_integrity.ts";
import { awardLoad, loadToken, type Sent } from "./_load.ts";
import { serverEnv, startServer } from "./_process.ts";

const CONNECT_TIMEOUT_S = 2;
/** The promise: no request waits longer than the connect timeout plus a second. */
const BOUND_MS = CONNECT_TIMEOUT_S * 1000 + 1000;

/** The admin pages a signed-in admin opens (the session is looked up in the database). */
function adminPageRequests(session: string) {
  const cookie = { cookie: `lg_session=${session}` };
  return ["/admin/health", "/admin/health?part=violations-part", "/admin/students/1"].map((path) => ({
    name: `GET ${path}`,
    path,
    init: { method: "GET", headers: cookie },
  }));
}

/** Every database route of the contract, as a request an admin would send, and the admin pages. */
async function everyDatabaseRequest() {
  const admin = await bearer(1, "ADMIN");
  const api = API_CONTRACT.filter((d) => d.usesDatabase !== false).map((doc) => ({
    name: `${doc.method} ${doc.path}`,
    path: doc.path,
    init: {
      method: doc.method,
      headers: {
        ...(doc.roles.length ? admin : {}),
        ...(doc.body ? { "Content-Type": "application/json" } : {}),
      },
      body: doc.body ? JSON.stringify(doc.example) : undefined,
    },
  }));
  return [...api, ...adminPageRequests("a-well-formed-session-token-0123456789")];
}

/** An admin page's status and time, its body read to the end. */
async function page(url: string, cookie?: string) {
  const t = performance.now();
  const res = await fetch(url, { headers: cookie ? { cookie } : {}, redirect: "manual" });
  const body = await res.text();
  return { status: res.status, ms: performance.now() - t, type: res.headers.get("content-type"), body };
}

for (
  const [name, listen] of [
    ["refuses connections", () => ({ port: closedPort(), close: () => {} })],
    ["accepts connections but never answers", () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const held: Deno.Conn[] = [];
      (async () => {
        for await (const conn of listener) held.push(conn);
      })().catch(() => {});
      return {
        port: (listener.addr as Deno.NetAddr).port,
        close: () => {
          listener.close();
          for (const c of held) c.close();
        },
      };
    }],
  ] as const
) {
  Deno.test(`with a database that ${name}, every endpoint needing it answers 503 with Retry-After within the bound`, () =>
    withTestApp({ env: { DB_CONNECT_TIMEOUT_S: String(CONNECT_TIMEOUT_S) } }, async ({ another }) => {
      const target = listen();
      let watch: { stop(): void } | undefined;
      const url = `postgres://nobody@127.0.0.1:${target.port}/none`;
      const sql = postgres(url, { max: 2, connect_timeout: CONNECT_TIMEOUT_S, onnotice: () => {} });
      try {
        const { app, deps } = await another({ sql, url });
        watch = deps.watch;
        const requests = await everyDatabaseRequest();
        // All at once, more than the pool holds: queued requests must not wait out a timeout each.
        const started = performance.now();
        const { result: responses } = await capturingStderr(() =>
          Promise.all([...requests, ...requests].map(async (r) => {
            const res = await app.request(r.path, r.init);
            return { name: r.name, res, body: await res.json(), ms: performance.now() - started };
          }))
        );
        for (const { name, res, body, ms } of responses) {
          assertEquals(res.status, 503, `${name}: ${JSON.stringify(body)}`);
          assertEquals(res.headers.get("content-type"), "application/problem+json", name);
          assertEquals(res.headers.get("retry-after"), "5", name);
          assert(ms < BOUND_MS, `${name} took ${Math.round(ms)} ms`);
        }
        const ready = await app.request("/readyz");
        assertEquals(ready.status, 503);
        await ready.body?.cancel();
        // While it is down, new requests are refused without touching the pool.
        const again = await capturingStderr(async () => {
          const t = performance.now();
          const res = await app.request(requests[0].path, requests[0].init);
          await res.body?.cancel();
          return { status: res.status, ms: performance.now() - t };
        });
        assertEquals(again.result.status, 503);
        assert(again.result.ms < 100, `refused at once (${again.result.ms} ms)`);
        // The sign-in page too: signing in needs the database.
        const login = await capturingStderr(async () => await app.request("/admin/login"));
        assertEquals(login.result.status, 503);
        assertEquals(login.result.headers.get("retry-after"), "5");
        assertMatch((await login.result.json()).detail, /database is unavailable/);
        // A browser gets the same answer as a page.
        const browser = await capturingStderr(async () =>
          await app.request("/admin/login", { headers: { Accept: "text/html,application/xhtml+xml" } })
        );
        assertEquals(browser.result.status, 503);
        assertEquals(browser.result.headers.get("retry-after"), "5");
        assertMatch(browser.result.headers.get("content-type") ?? "", /^text\/html/);
        assertMatch(await browser.result.text(), /database is unavailable/);
      } finally {
        watch?.stop();
        await sql.end({ timeout: 1 }).catch(() => {});
        target.close();
      }
    }));
}

/** Until `done()` holds (checked every 50 ms), or `ms` have passed. */
async function until(done: () => boolean, ms: number) {
  const deadline = performance.now() + ms;
  while (!done() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** When the restart happens in the load, and when the load ends. */
interface RestartPlan {
  /** Resolves when PostgreSQL is to be stopped. */
  beforeHalt(live: Sent[]): Promise<void>;
  /** Resolves when the load is to end, PostgreSQL running again. */
  afterResume(live: Sent[]): Promise<void>;
}

const RESTART_NAME = "only 200s and 503s, none slower than the bound, recovery without a restart, " +
  "no desync, every acknowledged change in the ledger";

Deno.test({
  name: `PostgreSQL stopped and restarted under an update load: ${RESTART_NAME}`,
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  restartUnderLoad({
    beforeHalt: () => new Promise((r) => setTimeout(r, 1000)),
    afterResume: () => new Promise((r) => setTimeout(r, 3000)),
  }));

// The soak the numbers came from: 20,000 updates, PostgreSQL restarted halfway. LG_SLOW_TESTS=1.
const SOAK_UPDATES = 20_000;
/** Updates acknowledged so far (503s during the outage come fast and do not count). */
const acknowledged = (live: Sent[]) => live.filter((s) => s.status === 200).length;
Deno.test({
  name: `soak: PostgreSQL restarted in the middle of ${SOAK_UPDATES} updates: ${RESTART_NAME}`,
  ignore: !hasServer || !Deno.env.get("LG_SLOW_TESTS"),
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  restartUnderLoad({
    beforeHalt: (live) => until(() => acknowledged(live) >= SOAK_UPDATES / 2, 300_000),
    afterResume: async (live) => {
      await until(() => acknowledged(live) >= SOAK_UPDATES, 300_000);
      assert(acknowledged(live) >= SOAK_UPDATES, `only ${acknowledged(live)} updates within 5 minutes`);
    },
  }));

async function restartUnderLoad(plan: RestartPlan) {
  const bin = await findPgBin();
  assert(bin, "PostgreSQL binaries");
  const cluster = await startCluster(bin, { fsync: "off", full_page_writes: "off" });
  const setup = postgres(cluster.url, { max: 2, onnotice: () => {} });
  const logDir = await Deno.makeTempDir();
  try {
    await migrate(setup);
    const seeded = await seed(setup, {
      students: 100,
      desyncRate: 0,
      adminEmail: "admin@outage.test",
      adminPassword: "admin-password",
      studentPassword: "student-password",
    });
    const { token } = await createSession(setup, seeded.adminId, 3600);
    const cookie = `lg_session=${token}`;
    const server = await startServer(serverEnv({
      DATABASE_URL: cluster.url,
      DB_CONNECT_TIMEOUT_S: String(CONNECT_TIMEOUT_S),
      DB_POOL_MAX: "4",
      LOG_DIR: logDir,
    }));
    let stopLoad = () => {};
    const live: Sent[] = [];
    const load = awardLoad({
      sent: live,
      url: server.url,
      authorization: await loadToken(seeded.adminId),
      workers: 12,
      students: 100,
      stop: new Promise<void>((r) => stopLoad = r),
    });
    const t0 = performance.now();
    await plan.beforeHalt(live);
    await setup.end();
    await cluster.halt();
    const haltedAt = performance.now() - t0;
    // Down for 1.5 s, and on a loaded machine until the load has met the outage (at most 6 s more).
    await new Promise((r) => setTimeout(r, 1500));
    await until(() => live.some((s) => s.status === 503), 6000);
    // The admin pages, while it is down: 503 within the bound, not a login form or a 500.
    const downPages = [
      await page(`${server.url}/admin/health`, cookie),
      await page(`${server.url}/admin/login`),
    ];
    await cluster.resume();
    const resumedAt = performance.now() - t0;
    await plan.afterResume(live);
    const upPages = [
      await page(`${server.url}/admin/health`, cookie),
      await page(`${server.url}/admin/login`),
    ];
    stopLoad();
    const sent = await load;
    assertEquals(await server.stop(), 0);

    const byStatus = Object.groupBy(sent, (s) => String(s.status));
    const summary = Object.fromEntries(Object.entries(byStatus).map(([k, v]) => [k, v!.length]));
    assertEquals(Object.keys(summary).filter((s) => s !== "200" && s !== "503"), [], JSON.stringify(summary));
    const during = sent.filter((s) => s.startedAt - t0 > haltedAt && s.startedAt - t0 < resumedAt);
    assert(
      (byStatus["503"]?.length ?? 0) > 0,
      `the outage was seen: ${JSON.stringify(summary)}; halted at ${Math.round(haltedAt)} ms, resumed at ${
        Math.round(resumedAt)
      } ms; ${during.length} requests started meanwhile, slowest ${
        Math.round(Math.max(0, ...during.map((s) => s.ms)))
      } ms, slowest overall ${Math.round(Math.max(...sent.map((s) => s.ms)))} ms`,
    );
    const after = sent.filter((s) => s.startedAt - t0 > resumedAt + 1500);
    const notOk = after.filter((s) => s.status !== 200).map((s) => ({
      ...s,
      at: Math.round(s.startedAt - t0),
    }));
    assert(
      after.length > 0 && notOk.length === 0,
      `recovered by itself after the restart (resumed at ${
        Math.round(resumedAt)
      } ms; ${after.length} after, ` +
        `not 200: ${JSON.stringify(notOk.slice(0, 5))}, ${notOk.length} in all)`,
    );
    for (const p of downPages) {
      assertEquals([p.status, p.type], [503, "application/problem+json"], p.body);
      assert(p.ms < BOUND_MS, `an admin page took ${Math.round(p.ms)} ms`);
    }
    assertEquals(upPages.map((p) => [p.status, p.type]), [
      [200, "text/html; charset=UTF-8"],
      [200, "text/html; charset=UTF-8"],
    ], "the admin pages are back, the session still valid");
    const slowest = Math.max(...sent.map((s) => s.ms));
    assert(
      slowest < BOUND_MS,
      `slowest request ${Math.round(slowest)} ms (halted at ${Math.round(haltedAt)} ms)`,
    );

    const check = postgres(cluster.url, { max: 1, onnotice: () => {} });
    try {
      assertEquals(await desyncs(check), 0);
      const acked = byStatus["200"]!.map((s) => s.eventId!);
      const [{ found }] = await check<{ found: number }[]>`
        SELECT count(*)::int AS found FROM xp_events WHERE id = ANY(${acked}::bigint[])`;
      assertEquals(found, new Set(acked).size, "every acknowledged change is in the ledger");
    } finally {
      await check.end();
    }
  } finally {
    await setup.end().catch(() => {});
    await cluster.stop();
    await Deno.remove(logDir, { recursive: true });
  }
}

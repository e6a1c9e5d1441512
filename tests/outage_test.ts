/**
 * The database going away and coming back: every endpoint that needs it
 * answers 503 problem+json with Retry-After within the connect timeout, the
 * service recovers by itself, and no acknowledged change is lost.
 */
import { assert, assertEquals } from "./_assert.ts";
import postgres from "postgres";
import { findPgBin, startCluster } from "../lib/dev/cluster.ts";
import { migrate } from "../lib/migrate.ts";
import { seed } from "../lib/seed.ts";
import { API_CONTRACT } from "../routes/contract.ts";
import { hasServer } from "./_db.ts";
import { bearer, capturingStderr, closedPort, withTestApp } from "./_fixture.ts";
import { desyncs } from "./_integrity.ts";
import { awardLoad, LOAD_SECRET, loadToken, type Sent } from "./_load.ts";
import { startServer } from "./_process.ts";

const CONNECT_TIMEOUT_S = 2;
/** The promise: no request waits longer than the connect timeout plus a second. */
const BOUND_MS = CONNECT_TIMEOUT_S * 1000 + 1000;

/** Every database route of the contract, as a request an admin would send. */
async function everyDatabaseRequest() {
  const admin = await bearer(1, "ADMIN");
  return API_CONTRACT.filter((d) => d.usesDatabase !== false).map((doc) => ({
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
      } finally {
        watch?.stop();
        await sql.end({ timeout: 1 }).catch(() => {});
        target.close();
      }
    }));
}

Deno.test({
  name:
    "PostgreSQL stopped and restarted under an update load: only 200s and 503s, none slower than the bound, " +
    "recovery without a restart, no desync, every acknowledged change in the ledger",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
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
    const server = await startServer({
      DATABASE_URL: cluster.url,
      JWT_SECRET: LOAD_SECRET,
      DB_CONNECT_TIMEOUT_S: String(CONNECT_TIMEOUT_S),
      DB_POOL_MAX: "4",
      RATE_LIMIT_PER_MINUTE: "0",
      LOG_REQUESTS: "0",
      SCAN_ENABLED: "0",
      LOG_DIR: logDir,
    });
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
    await new Promise((r) => setTimeout(r, 1000));
    await setup.end();
    await cluster.halt();
    const haltedAt = performance.now() - t0;
    // Down for 1.5 s, and on a loaded machine until the load has met the outage (at most 6 s more).
    await new Promise((r) => setTimeout(r, 1500));
    const deadline = performance.now() + 6000;
    while (!live.some((s) => s.status === 503) && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await cluster.resume();
    const resumedAt = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 3000));
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
    assert(after.length > 0 && after.every((s) => s.status === 200), "recovered by itself after the restart");
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
});

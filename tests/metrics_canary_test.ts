/** GET /metrics: the canary's business gauges and the pool's waiting requests. */
import postgres from "postgres";
import { assert, assertEquals } from "./_assert.ts";
import { Admission } from "../lib/admission.ts";
import { inRollout } from "../lib/canary/bucket.ts";
import { setRollout } from "../lib/canary/rollout.ts";
import { Metrics, type MetricSources } from "../lib/metrics.ts";
import { closedPort, type TestApp, withTestApp } from "./_fixture.ts";
import { parseScrape, type Scrape } from "./_prom.ts";

const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } } as const;

async function scrape(app: TestApp["app"]): Promise<Scrape> {
  const res = await app.request("/metrics", {}, LOOPBACK);
  assertEquals(res.status, 200, "scrape status");
  return parseScrape(await res.text());
}

const CANARY = ["levelguard_canary_rollout_percent", "levelguard_canary_admins", "levelguard_active_admins"];

Deno.test("admins in the canary: the rollout percentage and the active admins inside it, on every instance", () =>
  withTestApp(async ({ db, another }) => {
    const ids = Array.from({ length: 40 }, (_, i) => 200_001 + i);
    await db.sql`
      INSERT INTO users (id, email, hashed_password, role)
      SELECT id, 'admin' || id || '@test.example', 'unused', 'ADMIN' FROM unnest(${ids}::int[]) AS id`;
    // Inactive admins and other roles are not in the canary's population.
    await db.sql`
      INSERT INTO users (id, email, hashed_password, role, is_active) VALUES
        (300001, 'gone@test.example', 'unused', 'ADMIN', false),
        (300002, 'teacher@test.example', 'unused', 'INSTRUCTOR', true)`;
    await setRollout(db.sql, { percent: 25, reason: null, source: "cli", actorId: null, actor: "cli:test" });
    const inside = ids.filter((id) => inRollout(id, 25)).length;
    assert(inside > 0 && inside < ids.length, `${inside} of ${ids.length} in the rollout`);

    // An instance that did not make the change reads it from the shared state.
    const { app } = await another();
    const s = await scrape(app);
    assertEquals(s.value("levelguard_canary_rollout_percent"), 25);
    assertEquals(s.value("levelguard_canary_admins"), inside);
    assertEquals(s.value("levelguard_active_admins"), ids.length);

    // The admin list is cached (no query per scrape); the percentage follows within a second.
    await db
      .sql`INSERT INTO users (id, email, hashed_password, role) VALUES (300003, 'new@test.example', 'x', 'ADMIN')`;
    await setRollout(db.sql, { percent: 100, reason: null, source: "cli", actorId: null, actor: "cli:test" });
    await new Promise((r) => setTimeout(r, 1100));
    const later = await scrape(app);
    assertEquals(later.value("levelguard_canary_rollout_percent"), 100);
    assertEquals(later.value("levelguard_canary_admins"), ids.length, "all cached admins at 100 %");
    assertEquals(later.value("levelguard_active_admins"), ids.length);
  }));

Deno.test("the canary gauges are absent, not 0, while the database does not answer; the scrape still comes", () =>
  withTestApp(async ({ another }) => {
    const url = `postgres://nobody@127.0.0.1:${closedPort()}/none`;
    const sql = postgres(url, { max: 1, connect_timeout: 1 });
    try {
      const { app } = await another({ sql, url });
      const started = performance.now();
      const s = await scrape(app);
      assert(performance.now() - started < 3000, "bounded by the read timeout");
      for (const name of CANARY) {
        assert(s.families.has(name), `${name} declared`);
        assertEquals(s.samples(name), [], `${name} absent`);
      }
      assert(s.value("levelguard_db_pool_size")! >= 1);
    } finally {
      await sql.end({ timeout: 1 });
    }
  }));

/** A Metrics over stand-in sources, scraped. */
async function scrapeWith(sources: Partial<MetricSources>): Promise<Scrape> {
  const metrics = new Metrics({
    status: () => Promise.reject(new Error("no database in this test")),
    passwords: new Admission({ what: "sign-ins", concurrency: 1, maxWaitMs: 100 }),
    databasePending: () => 0,
    poolSize: 4,
    ...sources,
  });
  return parseScrape(await metrics.scrape());
}

Deno.test("levelguard_db_requests_waiting: pending requests beyond the busy connections", async () => {
  const counts = (busy: number | null) => () =>
    Promise.resolve(busy === null ? null : { busy, idle: 4 - busy });
  let s = await scrapeWith({ databasePending: () => 7, connections: counts(3) });
  assertEquals(s.value("levelguard_db_requests_waiting"), 4);
  assertEquals(s.value("levelguard_db_connections", { state: "busy" }), 3);
  assertEquals(s.value("levelguard_db_requests_pending"), 7);
  // Fewer pending than busy (a check holds connections too): nobody waits.
  s = await scrapeWith({ databasePending: () => 1, connections: counts(3) });
  assertEquals(s.value("levelguard_db_requests_waiting"), 0);
  // The pool could not spare a connection to count them: all four are busy.
  s = await scrapeWith({ databasePending: () => 10, connections: counts(null) });
  assertEquals(s.value("levelguard_db_requests_waiting"), 6);
  assertEquals(s.samples("levelguard_db_connections"), []);
  // The embedded database has no per-state counts: neither series exists.
  s = await scrapeWith({ databasePending: () => 3 });
  assert(!s.families.has("levelguard_db_requests_waiting"));
  assert(!s.families.has("levelguard_db_connections"));
});

Deno.test("one scrape reads the connection counts once for both pool series", async () => {
  let reads = 0;
  await scrapeWith({
    databasePending: () => 2,
    connections: () => {
      reads++;
      return Promise.resolve({ busy: 1, idle: 3 });
    },
  });
  assertEquals(reads, 1);
});

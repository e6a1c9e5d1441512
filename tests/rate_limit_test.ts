import { assert, assertEquals, assertMatch } from "./_assert.ts";
import postgres from "postgres";
import { setQuiet } from "../lib/log.ts";
import { PostgresRateLimitStore } from "../lib/rate_limit/postgres_store.ts";
import { type App, capturingStderr, closedPort, withTestApp } from "./_fixture.ts";

/** The connection info `Deno.serve` hands to `app.fetch`, as `app.request`'s env. */
const from = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 40000 } });

async function get(
  app: App,
  ip: string,
  path = "/api/v1/openapi.json",
  headers: Record<string, string> = {},
) {
  const res = await app.request(path, { headers }, from(ip));
  await res.body?.cancel();
  return res;
}

async function burn(app: App, ip: string, n: number, headers: Record<string, string> = {}) {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await get(app, ip, undefined, headers)).status);
  return statuses;
}

const LIMITED = { RATE_LIMIT_PER_MINUTE: "100" };

for (const store of ["memory", "postgres"]) {
  Deno.test(`the 101st request in a minute is a 429 problem with Retry-After and RateLimit headers (${store} store)`, () =>
    withTestApp({ env: { ...LIMITED, RATE_LIMIT_STORE: store } }, async ({ app }) => {
      for (let i = 1; i <= 100; i++) {
        const res = await get(app, "203.0.113.7");
        assertEquals(res.status, 200, `request ${i}`);
        assertEquals(res.headers.get("ratelimit-policy"), '"per-ip";q=100;w=60');
        assertMatch(res.headers.get("ratelimit") ?? "", new RegExp(`^"per-ip";r=${100 - i};t=\\d+$`));
      }
      const res = await app.request("/api/v1/openapi.json", {}, from("203.0.113.7"));
      assertEquals(res.status, 429);
      assertEquals(res.headers.get("content-type"), "application/problem+json");
      const retryAfter = Number(res.headers.get("retry-after"));
      assert(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      assertEquals(res.headers.get("ratelimit-policy"), '"per-ip";q=100;w=60');
      assertEquals(res.headers.get("ratelimit"), `"per-ip";r=0;t=${retryAfter}`);
      assert(res.headers.get("x-request-id"), "429s carry a request id");
      assert(res.headers.get("content-security-policy"), "429s carry the secure headers");
      const problem = await res.json();
      assertEquals([problem.status, problem.title], [429, "Too many requests"]);
      // Another client still has its whole budget.
      assertEquals((await get(app, "203.0.113.8")).status, 200);
    }));
}

Deno.test("the limit covers every route, including errors, except /healthz and /readyz", () =>
  withTestApp({ env: { RATE_LIMIT_PER_MINUTE: "3" } }, async ({ app }) => {
    assertEquals((await get(app, "198.51.100.1", "/api/v1/nothing")).status, 404);
    assertEquals((await get(app, "198.51.100.1", "/admin/health")).status, 302);
    assertEquals((await get(app, "198.51.100.1", "/api/v1/openapi.json")).status, 200);
    assertEquals((await get(app, "198.51.100.1", "/api/v1/openapi.json")).status, 429);
    for (let i = 0; i < 5; i++) {
      assertEquals((await get(app, "198.51.100.1", "/healthz")).status, 200);
      assertEquals((await get(app, "198.51.100.1", "/readyz")).status, 200);
    }
  }));

Deno.test("exempt CIDRs are never limited: IPv4, IPv6 and IPv4-mapped IPv6 clients", () =>
  withTestApp({
    env: { RATE_LIMIT_PER_MINUTE: "5", RATE_LIMIT_EXEMPT: "10.0.0.0/8, 2001:db8:aaaa::/48" },
  }, async ({ app }) => {
    for (const ip of ["10.1.2.3", "::ffff:10.9.9.9", "2001:db8:aaaa:1::42"]) {
      const statuses = await burn(app, ip, 150);
      assert(statuses.every((s) => s === 200), `${ip} was limited`);
      const res = await get(app, ip);
      assertEquals(res.headers.get("ratelimit"), null, `${ip} is not counted at all`);
    }
    assertEquals((await burn(app, "11.0.0.1", 6)).at(-1), 429);
    assertEquals((await burn(app, "2001:db8:bbbb::1", 6)).at(-1), 429);
  }));

Deno.test("an IPv4-mapped IPv6 client shares its budget with the same IPv4 address", () =>
  withTestApp({ env: { RATE_LIMIT_PER_MINUTE: "4" } }, async ({ app }) => {
    await burn(app, "192.0.2.10", 2);
    await burn(app, "::ffff:192.0.2.10", 2);
    assertEquals((await get(app, "192.0.2.10")).status, 429);
  }));

Deno.test("IPv6 clients are counted per /64, so rotating addresses does not reset the budget", () =>
  withTestApp({ env: { RATE_LIMIT_PER_MINUTE: "3" } }, async ({ app }) => {
    for (const ip of ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]) {
      assertEquals((await get(app, ip)).status, 200);
    }
    assertEquals((await get(app, "2001:db8:1:2::4")).status, 429);
    assertEquals((await get(app, "2001:db8:1:3::1")).status, 200);
  }));

Deno.test("X-Forwarded-For is ignored unless the peer is a listed proxy, and then the client it appended counts", () =>
  withTestApp({ env: { RATE_LIMIT_PER_MINUTE: "2" } }, async ({ app: direct, another }) => {
    await burn(direct, "127.0.0.1", 2, { "X-Forwarded-For": "1.1.1.1" });
    // A forged header does not buy a new budget from the same socket.
    assertEquals((await get(direct, "127.0.0.1", undefined, { "X-Forwarded-For": "2.2.2.2" })).status, 429);

    const { app: proxied } = await another({ env: { TRUST_PROXY: "127.0.0.1/32" } });
    await burn(proxied, "127.0.0.1", 2, { "X-Forwarded-For": "198.51.100.20" });
    assertEquals(
      (await get(proxied, "127.0.0.1", undefined, { "X-Forwarded-For": "9.9.9.9, 198.51.100.20" })).status,
      429,
      "a client-supplied left-most entry does not change who is counted",
    );
    assertEquals(
      (await get(proxied, "127.0.0.1", undefined, { "X-Forwarded-For": "198.51.100.21" })).status,
      200,
    );
  }));

Deno.test("TRUST_PROXY with an exempt CIDR exempts the forwarded client, not the proxy", () =>
  withTestApp({
    env: { RATE_LIMIT_PER_MINUTE: "2", TRUST_PROXY: "127.0.0.1/32", RATE_LIMIT_EXEMPT: "192.168.50.0/24" },
  }, async ({ app }) => {
    assert((await burn(app, "127.0.0.1", 10, { "X-Forwarded-For": "192.168.50.7" })).every((s) => s === 200));
    assertEquals((await burn(app, "127.0.0.1", 3, { "X-Forwarded-For": "8.8.8.8" })).at(-1), 429);
    // A peer that is no listed proxy is the client itself, whatever it forwards (here: exempt).
    assertEquals((await burn(app, "192.168.50.1", 3, { "X-Forwarded-For": "8.8.8.9" })).at(-1), 200);
  }));

Deno.test("static assets are not counted: 105 reloads of the stylesheet leave the API's whole budget", () =>
  withTestApp({ env: LIMITED }, async ({ app, deps }) => {
    const ip = "203.0.113.60";
    for (let i = 1; i <= 105; i++) {
      const css = await get(app, ip, deps.assets.css);
      assertEquals(css.status, 200, `reload ${i}`);
      assertEquals(css.headers.get("ratelimit"), null, "not counted");
    }
    for (const asset of [deps.assets.htmx, deps.assets.icon, "/static/css/no-such-file.css"]) {
      assertEquals((await get(app, ip, asset)).headers.get("ratelimit"), null, asset);
    }
    const api = await get(app, ip);
    assertEquals(api.status, 200);
    assertMatch(api.headers.get("ratelimit") ?? "", /^"per-ip";r=99;/);
  }));

Deno.test("RATE_LIMIT_PER_MINUTE=0 turns limiting off entirely", () =>
  withTestApp({ env: { RATE_LIMIT_PER_MINUTE: "0" } }, async ({ app }) => {
    const statuses = await burn(app, "203.0.113.50", 150);
    assert(statuses.every((s) => s === 200));
    assertEquals((await get(app, "203.0.113.50")).headers.get("ratelimit"), null);
  }));

Deno.test("two app instances on one database share one budget with the PostgreSQL store", () =>
  withTestApp({ env: { ...LIMITED, RATE_LIMIT_STORE: "postgres" } }, async ({ db, app: a, another }) => {
    // A second instance: its own pool and its own store object, one table.
    const { app: b } = await another({ sql: db.connect(2) });
    const ip = "203.0.113.99";
    // 100 requests split between the instances, some of them concurrent.
    const first = await Promise.all(Array.from({ length: 40 }, (_, i) => get(i % 2 ? a : b, ip)));
    assert(first.every((r) => r.status === 200));
    assert((await burn(a, ip, 30)).every((s) => s === 200));
    assert((await burn(b, ip, 30)).every((s) => s === 200));
    assertEquals((await get(a, ip)).status, 429);
    assertEquals((await get(b, ip)).status, 429);
    const [row] = await db.sql`SELECT hits FROM rate_limit_hits WHERE key = ${"ip:" + ip}`;
    assertEquals(row.hits, 102);
  }));

Deno.test("the PostgreSQL store starts a fresh window once the old one ends, and forgets expired rows", () =>
  withTestApp(async ({ db }) => {
    const store = new PostgresRateLimitStore(db.sql, { windowMs: 300 });
    assertEquals((await store.increment("k")).totalHits, 1);
    assertEquals((await store.increment("k")).totalHits, 2);
    const reset = (await store.increment("k")).resetTime!;
    assert(
      reset.getTime() - Date.now() <= 300 && reset.getTime() > Date.now() - 50,
      "reset within the window",
    );
    await store.decrement("k");
    assertEquals((await store.get("k"))?.totalHits, 2);
    await new Promise((r) => setTimeout(r, 350));
    assertEquals(await store.get("k"), undefined);
    assertEquals((await store.increment("k")).totalHits, 1);
    await store.resetKey("k");
    assertEquals(await store.get("k"), undefined);
  }));

Deno.test("the PostgreSQL store lets requests through when the database is down, counting each failure", async () => {
  const sql = postgres(`postgres://nobody@127.0.0.1:${closedPort()}/none`, { max: 1, connect_timeout: 1 });
  setQuiet(true);
  let failures = 0;
  try {
    const { lines } = await capturingStderr(async () => {
      const store = new PostgresRateLimitStore(sql, { windowMs: 60_000, onFailure: () => failures++ });
      assertEquals((await store.increment("k")).totalHits, 0);
      assertEquals((await store.increment("k")).totalHits, 0);
    });
    assertEquals(failures, 2, "every failed count is counted");
    assertEquals(lines.length, 1, "one warning per window, not one per request");
    assertMatch(lines[0], /rate limit store unavailable/);
  } finally {
    await sql.end();
  }
});

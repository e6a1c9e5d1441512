/**
 * Proxies are named, not believed: X-Forwarded-For, -Proto, -Host and a
 * client's X-Request-Id count only from a peer TRUST_PROXY lists. Pure: the
 * walk itself, then the middlewares on a bare Hono app, the socket's peer
 * passed as `app.request`'s env as `Deno.serve` hands it over.
 */
import { Hono } from "hono";
import { csrf } from "hono/csrf";
import { MemoryStore } from "hono-rate-limiter";
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { loadConfig } from "../lib/config.ts";
import { forwardedClient, forwardedValue } from "../lib/forwarded.ts";
import { parseIp } from "../lib/rate_limit/ip.ts";
import { requestOrigin } from "../routes/middleware/forwarded.ts";
import { rateLimit } from "../routes/middleware/rate_limit.ts";
import { requestId } from "../routes/middleware/request_id.ts";
import { secureHeaders } from "../routes/middleware/secure_headers.ts";
import { setSessionCookie } from "../routes/middleware/session.ts";
import { onError } from "../routes/problem.ts";

const from = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 40000 } });
const ip = (text: string) => parseIp(text)!;
const proxies = (list: string) => loadConfig({ TRUST_PROXY: list }).TRUST_PROXY;

const PROXY = "10.0.0.1";
const STRANGER = "203.0.113.7";

/** The edge as createApp mounts it, with a budget of 3 requests a minute and a form behind the Origin check. */
function edge(trustProxy: string) {
  const config = loadConfig({ TRUST_PROXY: trustProxy, RATE_LIMIT_PER_MINUTE: "3" });
  const list = config.TRUST_PROXY;
  const app = new Hono<{ Variables: { requestId: string } }>();
  app.use(requestId({ trustProxy: list }));
  app.use(secureHeaders({ trustProxy: list }));
  app.use(rateLimit({ config, store: new MemoryStore() }));
  app.use("/form", csrf({ origin: (origin, c) => origin === requestOrigin(c, list) }));
  app.onError(onError);
  app.get("/id", (c) => c.text(c.get("requestId")));
  app.get("/cookie", (c) => {
    setSessionCookie(c, list, "token", 60);
    return c.text("ok");
  });
  app.post("/form", (c) => c.text("accepted"));
  return app;
}

async function status(
  app: ReturnType<typeof edge>,
  peer: string,
  headers: Record<string, string> = {},
  path = "/id",
) {
  const res = await app.request(`http://levelguard.example${path}`, { headers }, from(peer));
  await res.body?.cancel();
  return res.status;
}

Deno.test("X-Forwarded-For is walked right to left past trusted hops; the first untrusted entry is the client", () => {
  const trusted = proxies("10.0.0.0/8, 2001:db8::/32");
  const walk = (peer: string, header: string | undefined) => forwardedClient(ip(peer), header, trusted);
  assertEquals(walk("10.0.0.1", "198.51.100.1"), ip("198.51.100.1"));
  assertEquals(walk("10.0.0.1", "6.6.6.6, 198.51.100.1"), ip("198.51.100.1"), "left of the client: forged");
  assertEquals(walk("10.0.0.1", "6.6.6.6, 198.51.100.1, 10.9.9.9"), ip("198.51.100.1"), "past a trusted hop");
  assertEquals(walk("10.0.0.1", "10.0.0.5, 10.0.0.6"), ip("10.0.0.5"), "all trusted: the left-most");
  assertEquals(walk("10.0.0.1", undefined), ip("10.0.0.1"), "the proxy's own request");
  assertEquals(walk("10.0.0.1", "198.51.100.1:4711"), ip("198.51.100.1"), "a port some proxies add");
  assertEquals(walk("10.0.0.1", "[2001:db9::1]:443"), ip("2001:db9::1"));
  assertEquals(walk("2001:db8::5", "::ffff:198.51.100.1"), ip("198.51.100.1"));
  // An entry the walk reaches that is no address: unknown, never a guess.
  for (const header of ["unknown", "_hidden, 10.0.0.9", "198.51.100.1, , 10.0.0.9", "1.2.3.4 5.6.7.8"]) {
    assertEquals(walk("10.0.0.1", header), null, header);
  }
  // Garbage left of the client is never reached.
  assertEquals(walk("10.0.0.1", "garbage, 198.51.100.1"), ip("198.51.100.1"));
  // From any other peer, or with no proxies named, the header means nothing.
  assertEquals(walk(STRANGER, "198.51.100.1"), ip(STRANGER));
  assertEquals(forwardedClient(ip(PROXY), "198.51.100.1", []), ip(PROXY));
  assertEquals(forwardedClient(null, "198.51.100.1", trusted), null);

  assertEquals(forwardedValue(ip(PROXY), "http, https", trusted), "https", "the nearest proxy's");
  assertEquals(forwardedValue(ip(STRANGER), "https", trusted), undefined);
  assertEquals(forwardedValue(ip(PROXY), " ", trusted), undefined);
});

Deno.test("a rotating X-Forwarded-For from a peer that is no listed proxy is one client, limited as one", async () => {
  for (const trustProxy of ["", "0", PROXY]) {
    const app = edge(trustProxy);
    const statuses = [];
    for (let i = 1; i <= 5; i++) {
      statuses.push(await status(app, STRANGER, { "X-Forwarded-For": `1.1.1.${i}` }));
    }
    assertEquals(statuses, [200, 200, 200, 429, 429], `TRUST_PROXY=${trustProxy}`);
  }
});

Deno.test("from a listed proxy each forwarded client has its own budget, and a forged left entry buys none", async () => {
  const app = edge(`${PROXY}, 10.0.1.0/24`);
  const client = (xff: string) => status(app, PROXY, { "X-Forwarded-For": xff });
  for (let i = 0; i < 3; i++) assertEquals(await client("198.51.100.1"), 200);
  assertEquals(await client("198.51.100.1"), 429);
  assertEquals(await client("6.6.6.6, 198.51.100.1"), 429, "forged entry left of the one the proxy appended");
  assertEquals(await client("198.51.100.1, 10.0.1.7"), 429, "the same client through a second trusted hop");
  assertEquals(await client("198.51.100.2"), 200, "another client");
  // The proxy's own budget is untouched by its clients'.
  assertEquals(await status(app, PROXY), 200);
});

Deno.test("a client's X-Request-Id is kept from a listed proxy only; anyone else gets the server's own", async () => {
  const app = edge(PROXY);
  const id = async (peer: string, sent?: string) => {
    const res = await app.request("/id", { headers: sent ? { "X-Request-Id": sent } : {} }, from(peer));
    const body = await res.text();
    assertEquals(res.headers.get("x-request-id"), body, "the header is the id the request ran with");
    return body;
  };
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const first = await id(STRANGER, "shared-id");
  const second = await id("198.51.100.99", "shared-id");
  assertMatch(first, uuid);
  assertMatch(second, uuid);
  assert(first !== second, "two actors sending one id do not share it");
  assertEquals(await id(PROXY, "nginx-id_0123"), "nginx-id_0123");
  assertMatch(await id(PROXY, "not valid!"), uuid);
  assertMatch(await id(PROXY), uuid);
  const unproxied = await edge("").request("/id", { headers: { "X-Request-Id": "shared-id" } }, from(PROXY));
  assertMatch(await unproxied.text(), uuid, "no proxies named: nobody's id is kept");
});

Deno.test("X-Forwarded-Proto is believed from a listed proxy only: HSTS and __Host- cookies", async () => {
  const app = edge(PROXY);
  const https = { "X-Forwarded-Proto": "https" };
  const cookie = async (peer: string) => {
    const res = await app.request("http://levelguard.example/cookie", { headers: https }, from(peer));
    await res.body?.cancel();
    return {
      hsts: res.headers.get("strict-transport-security"),
      cookie: res.headers.get("set-cookie") ?? "",
    };
  };
  const proxied = await cookie(PROXY);
  assert(proxied.hsts, "HSTS behind the proxy's TLS");
  assertMatch(proxied.cookie, /^__Host-lg_session=token;.*Secure/);
  const forged = await cookie(STRANGER);
  assertEquals(forged.hsts, null);
  assertMatch(forged.cookie, /^lg_session=token;/);
  assert(!/Secure/.test(forged.cookie), forged.cookie);
});

Deno.test("X-Forwarded-Host is believed from a listed proxy only: the dashboard's Origin check", async () => {
  const app = edge(PROXY);
  const post = async (peer: string, headers: Record<string, string>) => {
    const res = await app.request("http://levelguard.example/form", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: "a=1",
    }, from(peer));
    await res.body?.cancel();
    return res.status;
  };
  const evil = {
    origin: "https://evil.example",
    "x-forwarded-host": "evil.example",
    "x-forwarded-proto": "https",
  };
  assertEquals(await post(STRANGER, evil), 403, "a forged host and scheme do not make another site ours");
  const site = { origin: "https://levelguard.example", "x-forwarded-proto": "https" };
  assertEquals(await post(PROXY, site), 200, "behind the proxy's TLS, the page's own origin");
  assertEquals(await post(STRANGER, site), 403, "the same headers from anyone else: the request was http");
  const renamed = { origin: "https://public.example:8443", "x-forwarded-host": "public.example:8443" };
  assertEquals(await post(PROXY, { ...renamed, "x-forwarded-proto": "https" }), 200);
  assertEquals(await post(STRANGER, { origin: "http://levelguard.example" }), 200, "direct, plain HTTP");
});

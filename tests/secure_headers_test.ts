/** Security headers on a bare Hono app: every response, errors included, over plain HTTP and TLS. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { Hono } from "hono";
import { parseCidr } from "../lib/rate_limit/ip.ts";
import { HSTS, secureHeaders } from "../routes/middleware/secure_headers.ts";
import { onError, onNotFound } from "../routes/problem.ts";
import { capturingStderr } from "./_fixture.ts";

const PROXY = "10.0.0.1";
const from = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 40000 } });

function app(trustProxy = false) {
  const app = new Hono();
  app.use(secureHeaders({ trustProxy: trustProxy ? [parseCidr(PROXY)!] : [] }));
  app.onError(onError);
  app.notFound(onNotFound);
  app.get("/ok", (c) => c.json({ ok: true }));
  app.get("/boom", () => {
    throw new Error("boom");
  });
  return app;
}

Deno.test("every response carries a strict CSP and the secure headers, without a server fingerprint", async () => {
  await capturingStderr(async () => {
    for (const path of ["/ok", "/nothing", "/boom"]) {
      const res = await app().request(path);
      await res.body?.cancel();
      const csp = res.headers.get("content-security-policy") ?? "";
      assertMatch(csp, /default-src 'self'/, path);
      assertMatch(csp, /script-src 'self'(;|$)/, path);
      assertMatch(csp, /frame-ancestors 'none'/, path);
      assert(!/unsafe-inline|unsafe-eval/.test(csp), `${path}: ${csp}`);
      assertEquals(res.headers.get("x-content-type-options"), "nosniff", path);
      assertEquals(res.headers.get("x-frame-options"), "DENY", path);
      assertEquals(res.headers.get("referrer-policy"), "no-referrer", path);
      assertEquals(res.headers.get("server"), null, path);
      assertEquals(res.headers.get("x-powered-by"), null, path);
      assertEquals(res.headers.get("strict-transport-security"), null, `${path}: no HSTS over plain HTTP`);
    }
  });
});

Deno.test("HSTS is sent over TLS: an https URL, or X-Forwarded-Proto https from a trusted proxy only", async () => {
  const hsts = async (
    trustProxy: boolean,
    url: string,
    headers: Record<string, string> = {},
    peer = PROXY,
  ) => {
    const res = await app(trustProxy).request(url, { headers }, from(peer));
    await res.body?.cancel();
    return res.headers.get("strict-transport-security");
  };
  assertEquals(await hsts(false, "https://levelguard.example/ok"), HSTS);
  assertEquals(await hsts(false, "http://levelguard.example/ok", { "X-Forwarded-Proto": "https" }), null);
  assertEquals(await hsts(true, "http://levelguard.example/ok", { "X-Forwarded-Proto": "https" }), HSTS);
  assertEquals(await hsts(true, "http://levelguard.example/ok", { "X-Forwarded-Proto": "http" }), null);
  // Proxies are named: another peer's X-Forwarded-Proto is not believed.
  const forged = { "X-Forwarded-Proto": "https" };
  assertEquals(await hsts(true, "http://levelguard.example/ok", forged, "203.0.113.5"), null);
});

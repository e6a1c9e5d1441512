import { assertEquals, assertMatch } from "./_assert.ts";
import postgres from "postgres";
import { API_CONTRACT } from "../routes/contract.ts";
import { closedPort, withTestApp } from "./_fixture.ts";

Deno.test("/healthz answers without touching the database, with a request id", () =>
  withTestApp(async ({ app }) => {
    const res = await app.request("/healthz");
    assertEquals(res.status, 200);
    assertEquals(await res.json(), { status: "ok" });
    assertMatch(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  }));

Deno.test("/readyz is 200 when the database is migrated", () =>
  withTestApp(async ({ app }) => {
    const res = await app.request("/readyz");
    assertEquals(res.status, 200);
    assertEquals(await res.json(), { status: "ready" });
  }));

Deno.test("/readyz is 503 naming the pending migration", () =>
  withTestApp(async ({ another }) => {
    const { app, deps } = await another();
    deps.migrations.push({ name: "9999_future.sql", sql: "", checksum: "x" });
    const res = await app.request("/readyz");
    assertEquals(res.status, 503);
    assertEquals(await res.json(), { status: "not_ready", reason: "pending migrations: 9999_future.sql" });
  }));

Deno.test("/readyz is 503 with a reason when the database is unreachable", () =>
  withTestApp(async ({ another }) => {
    const sql = postgres(`postgres://nobody@127.0.0.1:${closedPort()}/none`, { max: 1, connect_timeout: 1 });
    try {
      const { app } = await another({ sql });
      const res = await app.request("/readyz");
      assertEquals(res.status, 503);
      const body = await res.json();
      assertEquals(body.status, "not_ready");
      assertMatch(body.reason, /^database (unreachable|did not answer)/);
    } finally {
      await sql.end();
    }
  }));

Deno.test("unknown routes get a problem+json 404", () =>
  withTestApp(async ({ app }) => {
    const res = await app.request("/api/v1/nothing-here");
    assertEquals(res.status, 404);
    assertEquals(res.headers.get("content-type"), "application/problem+json");
    const body = await res.json();
    assertEquals([body.status, body.title], [404, "Not found"]);
  }));

Deno.test("a method a path does not serve is 405 problem+json with Allow, on every route; unknown paths stay 404", () =>
  withTestApp(async ({ app }) => {
    const served = new Map<string, Set<string>>();
    for (const doc of API_CONTRACT) served.set(doc.path, (served.get(doc.path) ?? new Set()).add(doc.method));
    served.set("/healthz", new Set(["GET"]));
    served.set("/readyz", new Set(["GET"]));
    for (const [path, methods] of served) {
      const allow = [...methods, ...(methods.has("GET") ? ["HEAD"] : [])].sort().join(", ");
      for (const method of ["GET", "POST", "PUT", "DELETE", "PATCH"].filter((m) => !methods.has(m))) {
        const res = await app.request(path, { method });
        assertEquals(res.status, 405, `${method} ${path}`);
        assertEquals(res.headers.get("allow"), allow, `${method} ${path}`);
        assertEquals(res.headers.get("content-type"), "application/problem+json");
        assertEquals((await res.json()).title, "Method not allowed");
      }
    }
    assertEquals((await app.request("/api/v1/health/nothing", { method: "POST" })).status, 404);
  }));

import { assert, assertEquals, assertMatch } from "./_assert.ts";
import postgres from "postgres";
import type { Sql } from "../lib/db.ts";
import { API_CONTRACT } from "../routes/contract.ts";
import { opsRoutes } from "../routes/ops.ts";
import { capturingStderr, closedPort, withTestApp } from "./_fixture.ts";

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

Deno.test("/readyz is 503 with pending migrations, naming them in the log only", () =>
  withTestApp(async ({ another }) => {
    const { app, deps } = await another();
    deps.migrations.push({ name: "9999_future.sql", sql: "", checksum: "x" });
    const { result: res, lines } = await capturingStderr(async () => await app.request("/readyz"));
    assertEquals(res.status, 503);
    assertEquals(await res.json(), { status: "unavailable" });
    assert(lines.some((l) => l.includes("pending migrations: 9999_future.sql")), lines.join("\n"));
  }));

/** A client whose every query is counted: a database round trip each (or an attempt at one). */
function counting(sql: Sql): { sql: Sql; queries: () => number } {
  let n = 0;
  const counted = new Proxy(sql, {
    apply(target, self, args) {
      n++;
      return Reflect.apply(target, self, args);
    },
  });
  return { sql: counted, queries: () => n };
}

Deno.test("during an outage /readyz answers {status: unavailable} without error text, one database round trip a second", async () => {
  const port = closedPort();
  const down = postgres(`postgres://nobody@127.0.0.1:${port}/none`, {
    max: 1,
    connect_timeout: 1,
    onnotice: () => {},
  });
  const { sql, queries } = counting(down);
  const app = opsRoutes({ sql, migrations: [] });
  try {
    const started = performance.now();
    const { result: bodies, lines } = await capturingStderr(async () => {
      const answers: string[] = [];
      // Probes at once (a fleet of load balancers), then one after another.
      const burst = await Promise.all(Array.from({ length: 20 }, () => app.request("/readyz")));
      for (const res of burst) answers.push(`${res.status} ${await res.text()}`);
      for (let i = 0; i < 30; i++) {
        const res = await app.request("/readyz");
        answers.push(`${res.status} ${await res.text()}`);
      }
      return answers;
    });
    const elapsedS = (performance.now() - started) / 1000;
    assertEquals(new Set(bodies), new Set(['503 {"status":"unavailable"}']));
    // The first check, then at most one more each second that passed.
    assert(queries() >= 1 && queries() <= 1 + Math.floor(elapsedS), `${queries()} queries in ${elapsedS} s`);
    // The operator has the reason, once.
    const logged = lines.filter((l) => l.includes("not ready"));
    assertEquals(logged.length, 1, lines.join("\n"));
    assertMatch(logged[0], /database unreachable/);
  } finally {
    await down.end({ timeout: 0 });
  }
});

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

/** Error mapping, on a bare Hono app: each domain error's status and headers, outages as 503, and the 500 path. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import {
  Conflict,
  Forbidden,
  Invalid,
  KeyConflict,
  NotFound,
  Unauthenticated,
  Unavailable,
} from "../lib/errors.ts";
import { noStore } from "../routes/middleware/no_store.ts";
import { HttpProblem, onError, onNotFound } from "../routes/problem.ts";
import { capturingStderr } from "./_fixture.ts";

/** An app whose one route throws `err` (with the app's no-store middleware, as createApp mounts it). */
function throwing(err: unknown) {
  const app = new Hono();
  app.use(noStore());
  app.use(requestId({ headerName: "X-Request-Id" }));
  app.onError(onError);
  app.notFound(onNotFound);
  app.get("/boom", () => {
    throw err;
  });
  return app;
}

async function problemOf(err: unknown) {
  const { result } = await capturingStderr(async () => {
    const res = await throwing(err).request("/boom");
    return { res, body: await res.json() };
  });
  return result;
}

const pgError = (code: string) => Object.assign(new Error(`postgres said ${code}`), { code });

Deno.test("each domain error maps to its status, title and headers", async () => {
  const cases: [unknown, number, string, Record<string, string>][] = [
    [new Invalid("bad", [{ field: "x", message: "no" }]), 400, "Invalid request", {}],
    [new Unauthenticated(), 401, "Unauthorized", { "www-authenticate": 'Bearer realm="levelguard"' }],
    [new Forbidden(), 403, "Forbidden", {}],
    [new NotFound("none"), 404, "Not found", {}],
    [new Conflict("taken"), 409, "Conflict", {}],
    [new KeyConflict("reused"), 422, "Unprocessable request", {}],
    [new Unavailable("later", 7), 503, "Service unavailable", { "retry-after": "7" }],
    [new HttpProblem(429, "slow down", { "Retry-After": "30" }), 429, "Too many requests", {
      "retry-after": "30",
    }],
  ];
  for (const [err, status, title, headers] of cases) {
    const { res, body } = await problemOf(err);
    assertEquals([res.status, body.status, body.title], [status, status, title], String(err));
    assertEquals(res.headers.get("content-type"), "application/problem+json");
    assertEquals(res.headers.get("cache-control"), "no-store");
    for (const [name, value] of Object.entries(headers)) assertEquals(res.headers.get(name), value, name);
    assertEquals(body.request_id, res.headers.get("x-request-id"));
  }
  const { body } = await problemOf(new Invalid("bad", [{ field: "x", message: "no" }]));
  assertEquals(body.errors, [{ field: "x", message: "no" }]);
});

Deno.test("a database that is down, starting, stopping or out of connections is a 503 with Retry-After", async () => {
  const down = [
    "ECONNREFUSED",
    "CONNECT_TIMEOUT",
    "CONNECTION_CLOSED",
    "57P01",
    "57P02",
    "57P03",
    "08006",
    "3D000",
  ];
  for (const code of down) {
    const { res, body } = await problemOf(pgError(code));
    assertEquals(res.status, 503, code);
    assertEquals(body.detail, "The database is unavailable; retry shortly", code);
    assertEquals(res.headers.get("retry-after"), "5", code);
  }
  for (const code of ["53300", "57014", "40001", "40P01"]) {
    const { res, body } = await problemOf(pgError(code));
    assertEquals([res.status, body.detail], [503, "The database is busy; retry shortly"], code);
  }
});

Deno.test("an unexpected error is a 500 problem with the request id, no internals, and is logged with its stack", async () => {
  const { result: res, lines } = await capturingStderr(() =>
    Promise.resolve(throwing(new Error("connection to 10.0.0.5 failed: password hunter2")).request("/boom"))
  );
  assertEquals(res.status, 500);
  assertEquals(res.headers.get("content-type"), "application/problem+json");
  const text = await res.text();
  assert(!/hunter2|10\.0\.0\.5|at |\.ts:/.test(text), `internals leaked: ${text}`);
  const problem = JSON.parse(text);
  const requestId = res.headers.get("x-request-id");
  assertMatch(requestId ?? "", /^[0-9a-f-]{36}$/);
  assertEquals([problem.request_id, problem.title], [requestId, "Internal server error"]);
  const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "unhandled error");
  assertEquals(logged?.request_id, requestId);
  assertMatch(logged?.stack ?? "", /hunter2[\s\S]*at /);
  // An error with an unrelated SQLSTATE (a bug, not an outage) is a 500 too.
  assertEquals((await problemOf(pgError("42P01"))).res.status, 500);
});

Deno.test("problems escape <, > and & so echoed input is never markup, and unknown routes are 404 problems", async () => {
  const res = await throwing(null).request(`/${encodeURIComponent("<script>")}`);
  assertEquals(res.status, 404);
  const text = await res.text();
  assert(!/[<>]/.test(text), text);
  assert(JSON.parse(text).detail.includes("<script>"), "the path is echoed, escaped");
});

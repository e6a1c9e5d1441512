/** The body and query validators, on a bare Hono app (no database): what reaches a handler, and every refusal. */
import { assertEquals } from "./_assert.ts";
import { Hono } from "hono";
import type { z } from "zod";
import { BODY_LIMIT_BYTES, jsonBody, query } from "../routes/middleware/validate.ts";
import { onError } from "../routes/problem.ts";
import { checkNowBody, loginBody, progressUpdateBody, violationsQuery } from "../routes/schemas.ts";

/** A bare app that validates one body schema the way the real routes do and echoes what it got. */
function bodyApp(schema: z.ZodType, optional = false) {
  const app = new Hono();
  app.onError(onError);
  app.post(
    "/t",
    jsonBody(schema, { optional, timeoutMs: 10_000 }),
    (c) => c.json({ got: c.req.valid("json") }),
  );
  return app;
}

async function send(app: Hono, body: BodyInit | null, contentType?: string) {
  const res = await app.request("/t", {
    method: "POST",
    headers: contentType ? { "Content-Type": contentType } : {},
    body,
  });
  return { status: res.status, type: res.headers.get("content-type"), json: await res.json() };
}

const fields = (problem: { errors: { field: string }[] }) => problem.errors.map((e) => e.field);

Deno.test('xp_change 0, -9999999, 1.5, "10", 2^53 and null are 400 naming it; 9999999999 passes', async () => {
  const app = bodyApp(progressUpdateBody);
  for (const bad of [0, -9999999, 1.5, "10", 2 ** 53, null]) {
    const { status, json } = await send(
      app,
      JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: bad }),
      "application/json",
    );
    assertEquals([status, fields(json)], [400, ["xp_change"]], `xp_change ${JSON.stringify(bad)}`);
  }
  const ok = await send(
    app,
    JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 9999999999 }),
    "application/json",
  );
  assertEquals([ok.status, ok.json.got.xp_change], [200, 9999999999]);
});

Deno.test("ids beyond a PostgreSQL integer, lower-case specializations and unknown fields are 400", async () => {
  const app = bodyApp(progressUpdateBody);
  const cases: [Record<string, unknown>, string][] = [
    [{ student_id: 0 }, "student_id"],
    [{ student_id: 2 ** 31 }, "student_id"],
    [{ student_id: "1" }, "student_id"],
    [{ specialization_id: "player" }, "specialization_id"],
    [{ extra: true }, "extra"],
  ];
  for (const [patch, field] of cases) {
    const body = JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 1, ...patch });
    const { status, json } = await send(app, body, "application/json");
    assertEquals([status, fields(json)], [400, [field]], JSON.stringify(patch));
  }
});

Deno.test("check-now refuses a user_id of '1; DROP TABLE users; --' with 400 naming it", async () => {
  const { status, json } = await send(
    bodyApp(checkNowBody, true),
    JSON.stringify({ user_id: "1; DROP TABLE users; --" }),
    "application/json",
  );
  assertEquals([status, fields(json)], [400, ["user_id"]]);
});

Deno.test("malformed JSON is 400, another content type 415, a missing one 415, and a body over the limit 413", async () => {
  const app = bodyApp(loginBody);
  const malformed = await send(app, '{"email": "a@b.test", "password": ', "application/json");
  assertEquals([malformed.status, malformed.json.errors], [400, [{
    field: "body",
    message: "Malformed JSON",
  }]]);
  for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
    const res = await send(app, "email=a&password=b", type);
    assertEquals([res.status, res.type], [415, "application/problem+json"], type);
  }
  assertEquals((await send(app, JSON.stringify({ email: "a@b.test", password: "x" }))).status, 415);
  assertEquals(
    (await send(app, JSON.stringify({ email: "a@b.test", password: "x" }), "application/json; charset=utf-8"))
      .status,
    200,
  );

  const big = JSON.stringify({ email: "a@b.test", password: "x".repeat(BODY_LIMIT_BYTES) });
  const tooLarge = await send(app, big, "application/json");
  assertEquals([tooLarge.status, tooLarge.json.title], [413, "Payload too large"]);
  // Without a Content-Length (streamed), the limit still holds.
  const streamed = await app.request("/t", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: new Blob([big]).stream(),
    duplex: "half",
  } as RequestInit);
  assertEquals(streamed.status, 413);
});

Deno.test("unknown fields are 400 and each one is named", async () => {
  const { status, json } = await send(
    bodyApp(loginBody),
    JSON.stringify({ email: "a@b.test", password: "x", is_admin: true, role: "ADMIN" }),
    "application/json",
  );
  assertEquals(status, 400);
  assertEquals(json.errors, [
    { field: "is_admin", message: "Unknown field" },
    { field: "role", message: "Unknown field" },
  ]);
  assertEquals([json.type, json.title, json.status], [
    "https://levelguard.dev/problems/invalid-request",
    "Invalid request",
    400,
  ]);
});

Deno.test("an optional body may be absent, empty (whatever its Content-Type) or {}", async () => {
  const app = bodyApp(checkNowBody, true);
  const cases: [string | null, string | undefined][] = [
    [null, undefined],
    ["", "application/json"],
    ["", "application/x-www-form-urlencoded"], // curl -d ''
    ["{}", "application/json"],
  ];
  for (const [body, type] of cases) {
    const res = await send(app, body, type);
    assertEquals([res.status, res.json.got], [200, {}], `${JSON.stringify(body)} as ${type}`);
  }
  assertEquals((await send(app, '{"user_id": 7}', "application/json")).json.got, { user_id: 7 });
  assertEquals((await send(app, "{}", "text/plain")).status, 415);
  // A required body is not optional.
  assertEquals((await send(bodyApp(checkNowBody), "", "application/json")).status, 400);
});

Deno.test("query strings are validated, defaults applied, and every bad parameter named", async () => {
  const app = new Hono();
  app.onError(onError);
  app.get("/q", query(violationsQuery), (c) => c.json(c.req.valid("query")));
  assertEquals(await (await app.request("/q")).json(), { limit: 50 });
  for (const [qs, field] of [["limit=0", "limit"], ["kind=NOPE", "kind"], ["colour=red", "colour"]]) {
    const res = await app.request(`/q?${qs}`);
    assertEquals([res.status, fields(await res.json())], [400, [field]], qs);
  }
});

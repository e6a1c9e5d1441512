/**
 * Request bodies at the edge (routes/middleware/body.ts), on a bare Hono app (no database): a body
 * the client cuts short is 400 and one that stalls is 408, through the JSON validator and through
 * the dashboard's buffered forms alike; a whole body passes unchanged.
 */
import { Hono } from "hono";
import { assertEquals, assertMatch } from "./_assert.ts";
import { bufferedBody } from "../routes/middleware/body.ts";
import { jsonBody } from "../routes/middleware/validate.ts";
import { readForm } from "../routes/middleware/session.ts";
import { onError } from "../routes/problem.ts";
import { loginBody } from "../routes/schemas.ts";

const TIMEOUT_MS = 100;
const PART = '{"email": "a@b.test", "pass';

/** A JSON route and a form route, as the real ones read their bodies. */
function bodyApp() {
  const app = new Hono();
  app.onError(onError);
  app.post("/json", jsonBody(loginBody, { timeoutMs: TIMEOUT_MS }), (c) => c.json(c.req.valid("json")));
  app.use("/form", bufferedBody({ limit: 16 * 1024, timeoutMs: TIMEOUT_MS }));
  app.post("/form", async (c) => c.json(await readForm(c)));
  return app;
}

/** A body that sends `part`, then fails as Deno does when the client closes or resets mid-body. */
function cutShort(part: string) {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(part));
    },
    pull(controller) {
      controller.error(new Deno.errors.BadResource("Cannot read body as underlying resource unavailable"));
    },
  });
}

/** A body that sends `part`, then nothing more, ever. */
function stalled(part: string, cancelled: { reason?: unknown }) {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(part));
    },
    pull: () => new Promise(() => {}),
    cancel(reason) {
      cancelled.reason = reason ?? "cancelled";
    },
  });
}

async function post(
  app: Hono,
  path: string,
  body: ReadableStream<Uint8Array>,
  headers: Record<string, string>,
) {
  const res = await app.request(path, { method: "POST", headers, body, duplex: "half" } as RequestInit);
  return { status: res.status, type: res.headers.get("content-type"), problem: await res.json() };
}

const JSON_TYPE = { "content-type": "application/json" };
const FORM_TYPE = { "content-type": "application/x-www-form-urlencoded" };

Deno.test("a body the client cuts short is 400 'incomplete', with or without a Content-Length, JSON or form", async () => {
  const app = bodyApp();
  for (
    const [path, headers] of [
      ["/json", JSON_TYPE],
      ["/json", { ...JSON_TYPE, "content-length": "100" }],
      ["/form", FORM_TYPE],
      ["/form", { ...FORM_TYPE, "content-length": "100" }],
    ] as const
  ) {
    const { status, type, problem } = await post(app, path, cutShort(PART), headers);
    const what = `${path} ${JSON.stringify(headers)}`;
    assertEquals([status, type], [400, "application/problem+json"], what);
    assertMatch(problem.detail, /^The request body was incomplete/, what);
  }
});

Deno.test("a body that stalls is 408 once the bound has passed, and what was being read is dropped", async () => {
  const app = bodyApp();
  for (
    const [path, headers] of [
      ["/json", JSON_TYPE],
      ["/json", { ...JSON_TYPE, "content-length": "100" }],
      ["/form", FORM_TYPE],
      ["/form", { ...FORM_TYPE, "content-length": "100" }],
    ] as const
  ) {
    const cancelled: { reason?: unknown } = {};
    const { status, type, problem } = await post(app, path, stalled(PART, cancelled), headers);
    const what = `${path} ${JSON.stringify(headers)}`;
    assertEquals([status, type, problem.title], [408, "application/problem+json", "Request timeout"], what);
    assertEquals(
      problem.detail,
      "The request body did not arrive within 100 ms; send the whole body at once",
    );
    if (!("content-length" in headers)) {
      assertEquals(cancelled.reason !== undefined, true, `${what}: cancelled`);
    }
  }
});

Deno.test("a whole body passes the bounds unchanged, JSON or form", async () => {
  const app = bodyApp();
  const json = await app.request("/json", {
    method: "POST",
    headers: JSON_TYPE,
    body: JSON.stringify({ email: "a@b.test", password: "pw" }),
  });
  assertEquals([json.status, await json.json()], [200, { email: "a@b.test", password: "pw" }]);
  const form = await app.request("/form", {
    method: "POST",
    headers: FORM_TYPE,
    body: new URLSearchParams({ email: "a@b.test", next: "/admin/health" }),
  });
  assertEquals([form.status, await form.json()], [200, { email: "a@b.test", next: "/admin/health" }]);
  const big = await app.request("/form", {
    method: "POST",
    headers: FORM_TYPE,
    body: "x=" + "y".repeat(20_000),
  });
  assertEquals(big.status, 413);
  assertMatch((await big.json()).detail, /at most 16384 bytes/);
});

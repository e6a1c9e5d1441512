/**
 * Errors become pages and problems from one mapping: on a bare app, a browser's request under
 * /admin gets an HTML page made from the problem itself (status, title, detail, headers), every
 * other request problem+json. No database.
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { Conflict, Unavailable } from "../lib/errors.ts";
import { dashboardErrorPage } from "../routes/admin/error_page.tsx";
import { HttpProblem, problemAnswers } from "../routes/problem.ts";
import { capturingStderr } from "./_fixture.ts";

const ASSETS = { css: "/c.css", js: "/d.js", icon: "/i.svg", htmx: "/h.js", sse: "/s.js" };
const BROWSER = { accept: "text/html,application/xhtml+xml" };

/** An app whose routes throw, answering as createApp does. */
function app() {
  const app = new Hono();
  app.use(requestId({ headerName: "X-Request-Id" }));
  const problems = problemAnswers({ page: dashboardErrorPage(ASSETS) });
  app.onError(problems.onError);
  app.notFound(problems.notFoundOrMethodNotAllowed(() => app.routes));
  for (const prefix of ["/admin", "/api"]) {
    app.get(`${prefix}/busy`, () => {
      throw new Unavailable("Too many <checks> at once; retry in 7 s", 7);
    });
    app.get(`${prefix}/limited`, () => {
      throw new HttpProblem(429, "Rate limit exceeded; retry in 9 s", {
        "Retry-After": "9",
        RateLimit: "r=0",
      });
    });
    app.get(`${prefix}/taken`, () => {
      throw new Conflict("Not advanced: the rollout changed");
    });
  }
  return app;
}

async function answer(path: string, headers: Record<string, string> = {}) {
  const { result } = await capturingStderr(async () => {
    const res = await app().request(path, { headers });
    return { res, text: await res.text() };
  });
  return { ...result, type: result.res.headers.get("content-type") ?? "" };
}

Deno.test("a browser on the dashboard gets the problem as a page: its status, title, detail, headers and request id", async () => {
  const { res, text, type } = await answer("/admin/busy", BROWSER);
  assertEquals([res.status, res.headers.get("retry-after")], [503, "7"]);
  assertMatch(type, /^text\/html/);
  assertMatch(text, /<h1>Service unavailable<\/h1>/);
  assertMatch(text, /Too many &lt;checks&gt; at once; retry in 7 s/);
  assert(!text.includes("<checks>"), "the detail is text, not markup");
  assert(text.includes(`(request ${res.headers.get("x-request-id")})`), "the request id to quote");

  const limited = await answer("/admin/limited", BROWSER);
  assertEquals([
    limited.res.status,
    limited.res.headers.get("retry-after"),
    limited.res.headers.get("ratelimit"),
  ], [
    429,
    "9",
    "r=0",
  ]);
  assertMatch(limited.text, /<h1>Too many requests<\/h1>/);
  const conflict = await answer("/admin/taken", BROWSER);
  assertEquals(conflict.res.status, 409);
  assertMatch(conflict.text, /<h1>Conflict<\/h1>[\s\S]*Not advanced: the rollout changed/);
});

Deno.test("missing routes and methods under /admin are pages too, with Allow kept", async () => {
  const missing = await answer("/admin/nowhere", BROWSER);
  assertEquals(missing.res.status, 404);
  assertMatch(missing.text, /<h1>Not found<\/h1>[\s\S]*No route for GET \/admin\/nowhere/);
  const { res } = await capturingStderr(async () => ({
    res: await app().request("/admin/busy", { method: "POST", headers: BROWSER }),
  })).then((r) => r.result);
  assertEquals([res.status, res.headers.get("allow")], [405, "GET, HEAD"]);
  assertMatch(res.headers.get("content-type") ?? "", /^text\/html/);
  await res.body?.cancel();
});

Deno.test("htmx, API clients and every path outside /admin get problem+json with the same status and headers", async () => {
  for (
    const [path, headers] of [
      ["/admin/busy", { ...BROWSER, "hx-request": "true" }],
      ["/admin/busy", { accept: "application/json" }],
      ["/admin/busy", {}],
      ["/api/busy", BROWSER],
    ] as const
  ) {
    const { res, text, type } = await answer(path, headers);
    assertEquals(
      [res.status, res.headers.get("retry-after"), type],
      [503, "7", "application/problem+json"],
      path,
    );
    assertEquals(JSON.parse(text).detail, "Too many <checks> at once; retry in 7 s");
  }
});

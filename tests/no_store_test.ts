/**
 * `Cache-Control: no-store` comes from one middleware (routes/middleware/no_store.ts): on a bare
 * app, and on every kind of answer of the API and the dashboard; the answers that choose their own
 * policy (static assets, the OpenAPI document, the event stream) keep it.
 */
import { Hono } from "hono";
import { assertEquals } from "./_assert.ts";
import { seed } from "../lib/seed.ts";
import { createSession } from "../lib/sessions.ts";
import { NotFound } from "../lib/errors.ts";
import { noStore } from "../routes/middleware/no_store.ts";
import { onError, onNotFound } from "../routes/problem.ts";
import { shuttingDown, starting } from "../routes/starting.ts";
import { capturingStderr, PROGRESS_UPDATE_PATH, withTestApp } from "./_fixture.ts";

Deno.test("the middleware marks every answer without a policy of its own, errors and 404s too", async () => {
  const app = new Hono();
  app.use(noStore());
  app.onError(onError);
  app.notFound(onNotFound);
  app.get("/plain", (c) => c.text("ok"));
  app.get("/own", (c) => c.text("ok", 200, { "Cache-Control": "public, max-age=60" }));
  app.get("/thrown", () => {
    throw new NotFound("none");
  });
  const policy = async (path: string) => {
    const res = await app.request(path);
    await res.body?.cancel();
    return [res.status, res.headers.get("cache-control")];
  };
  assertEquals(await policy("/plain"), [200, "no-store"]);
  assertEquals(await policy("/own"), [200, "public, max-age=60"]);
  assertEquals(await policy("/thrown"), [404, "no-store"]);
  assertEquals(await policy("/nowhere"), [404, "no-store"]);
});

Deno.test("the answers before the app is ready and after a shutdown's grace period are no-store too", async () => {
  for (
    const res of [starting(new Request("http://x/api/v1/auth/login")), shuttingDown(new Request("http://x/"))]
  ) {
    assertEquals([res.status, res.headers.get("cache-control")], [503, "no-store"]);
    await res.body?.cancel();
  }
});

const PASSWORD = "admin-password-1";
const HTML = { accept: "text/html,application/xhtml+xml" };
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };

Deno.test("every kind of answer of the API and the dashboard is no-store; assets, the OpenAPI document and the event stream keep theirs", () =>
  withTestApp(async ({ db, app, deps }) => {
    const { adminId } = await seed(db.sql, {
      students: 5,
      desyncRate: 0,
      adminEmail: "admin@store.test",
      adminPassword: PASSWORD,
      studentPassword: "student-password-1",
    });
    await deps.runner.run("manual");
    const login = await app.request("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "admin@store.test", password: PASSWORD }),
    });
    const { access_token } = await login.clone().json();
    const api = { authorization: `Bearer ${access_token}` };
    const json = { ...api, "content-type": "application/json" };
    const { token } = await createSession(db.sql, adminId, 600);
    const cookie = { cookie: `lg_session=${token}` };
    const form = (fields: Record<string, string>) => ({
      method: "POST",
      headers: { origin: "http://localhost", "content-type": "application/x-www-form-urlencoded", ...HTML },
      body: new URLSearchParams(fields),
    });

    const answers: [string, Response | Promise<Response>][] = [
      ["the login's token", login],
      ["a refused login", app.request("/api/v1/auth/login", { method: "POST", body: "{}" })],
      ["the health status", app.request("/api/v1/health/status", { headers: api })],
      ["the health violations", app.request("/api/v1/health/violations", { headers: api })],
      ["the health API without a token", app.request("/api/v1/health/status")],
      ["the rollout", app.request("/api/v1/admin/rollout", { headers: api })],
      [
        "a rollout set",
        app.request("/api/v1/admin/rollout", { method: "PUT", headers: json, body: '{"percent":100}' }),
      ],
      [
        "an XP change",
        app.request(PROGRESS_UPDATE_PATH, {
          method: "POST",
          headers: json,
          body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 1 }),
        }),
      ],
      ["/metrics", app.request("/metrics", {}, LOOPBACK)],
      ["/readyz", app.request("/readyz")],
      ["/healthz", app.request("/healthz")],
      ["an unknown route", app.request("/api/v1/nowhere")],
      ["a method not served", app.request("/api/v1/health/status", { method: "DELETE" })],
      ["the sign-in page", app.request("http://localhost/admin/login", { headers: HTML })],
      [
        "a refused sign-in",
        app.request("http://localhost/admin/login", form({ email: "x@y", password: "z" })),
      ],
      ["the redirect to sign in", app.request("http://localhost/admin/health", { headers: HTML })],
      ["the health page", app.request("http://localhost/admin/health", { headers: { ...HTML, ...cookie } })],
      [
        "a part of it",
        app.request("http://localhost/admin/health", {
          headers: { ...cookie, "hx-request": "true", "hx-target": "live" },
        }),
      ],
      ["the CSV", app.request("http://localhost/admin/health/violations.csv", { headers: cookie })],
      [
        "a student's page",
        app.request("http://localhost/admin/students/1", { headers: { ...HTML, ...cookie } }),
      ],
      [
        "an error page",
        app.request("http://localhost/admin/students/999999", { headers: { ...HTML, ...cookie } }),
      ],
    ];
    const { result } = await capturingStderr(() =>
      Promise.all(answers.map(async ([name, pending]) => {
        const res = await pending;
        await res.body?.cancel();
        return [name, res.headers.get("cache-control")];
      }))
    );
    assertEquals(result, answers.map(([name]) => [name, "no-store"]));

    const own = async (path: string, headers: Record<string, string> = {}) => {
      const res = await app.request(`http://localhost${path}`, { headers });
      await res.body?.cancel();
      return res.headers.get("cache-control");
    };
    assertEquals(await own("/static/css/dashboard.css"), "public, max-age=31536000, immutable");
    assertEquals(await own("/api/v1/openapi.json"), "no-cache");
    // Hono's streamSSE sets no-cache, which event streams use: the client revalidates, never reuses.
    assertEquals(await own("/admin/health/events", cookie), "no-cache");
  }));

import { assert, assertEquals } from "./_assert.ts";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import createClient from "openapi-fetch";
import { z } from "zod";
import { apiDocs } from "../docs/api_docs.ts";
import type { paths } from "../docs/api_types.ts";
import { hashPassword } from "../lib/password.ts";
import { API_CONTRACT } from "../routes/contract.ts";
import { buildOpenApi, problemSchema, protectedRoutes } from "../routes/openapi_document.ts";
import { loginBody } from "../routes/schemas.ts";
import { withTestApp } from "./_fixture.ts";
import { seedConsistent } from "./_integrity.ts";

const openapiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

Deno.test("openapi.json documents every route of the contract, with the schema that validates it", () =>
  withTestApp(async ({ app }) => {
    const res = await app.request("/api/v1/openapi.json");
    assertEquals(res.status, 200);
    const doc = await res.json();
    assertEquals(doc.openapi, "3.1.0");
    for (const r of API_CONTRACT) {
      assert(doc.paths[openapiPath(r.path)]?.[r.method.toLowerCase()], `${r.method} ${r.path} is missing`);
    }
    const login = doc.paths["/api/v1/auth/login"].post;
    const { $schema: _, ...expected } = z.toJSONSchema(loginBody, { io: "input" });
    assertEquals(login.requestBody.content["application/json"].schema, expected);
    assertEquals(login.requestBody.content["application/json"].schema.additionalProperties, false);
    assertEquals(login.security, []);
    // Only the contract is documented: no phantom endpoints.
    const documented = Object.values(doc.paths).flatMap((ops) => Object.keys(ops as object));
    assertEquals(documented.length, API_CONTRACT.length);
  }));

Deno.test("openapi.json marks protected routes with bearer security and their roles", () =>
  withTestApp(async ({ app }) => {
    const doc = await (await app.request("/api/v1/openapi.json")).json();
    for (const route of protectedRoutes(API_CONTRACT)) {
      const op = doc.paths[openapiPath(route.path)][route.method.toLowerCase()];
      assertEquals(op.security, [{ bearer: [] }]);
      assertEquals(op["x-roles"], route.roles);
      assert(op.responses[401] && op.responses[403], `${route.path} documents 401 and 403`);
    }
  }));

Deno.test("the document passes redocly's recommended rules with no error or warning", async () => {
  const source = JSON.stringify(buildOpenApi(API_CONTRACT));
  const config = await createConfig({ extends: ["recommended"] });
  const problems = await lintFromString({ source, absoluteRef: "/openapi.json", config });
  assertEquals(problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message}`), []);
});

Deno.test("docs/openapi.json and the client types in docs/api_types.ts are current (deno task docs:api)", async () => {
  const { json, types } = await apiDocs();
  const here = (name: string) => new URL(`../docs/${name}`, import.meta.url);
  assert(
    json === await Deno.readTextFile(here("openapi.json")),
    "docs/openapi.json is stale: deno task docs:api",
  );
  assert(
    types === await Deno.readTextFile(here("api_types.ts")),
    "docs/api_types.ts is stale: deno task docs:api",
  );
});

/**
 * A client generated from the document (openapi-typescript types, openapi-fetch
 * calls): `deno check` fails when a call no longer fits the document, and each
 * response is checked against the contract's schema at run time.
 */
Deno.test("a typed client generated from the document calls every endpoint, and every response matches", () =>
  withTestApp(async ({ db, app }) => {
    const pairs = await seedConsistent(db.sql, 20);
    assert(pairs > 0);
    await db.sql`UPDATE users SET hashed_password = ${await hashPassword(
      "admin-password-1",
    )} WHERE role = 'ADMIN'`;
    const client = createClient<paths>({
      baseUrl: "http://levelguard.test",
      fetch: (request: Request) => Promise.resolve(app.request(request)),
    });
    const called = new Set<string>();
    const check = (method: string, path: string, response: Response, body: unknown) => {
      const doc = API_CONTRACT.find((d) => d.method === method && d.path === path)!;
      called.add(`${method} ${path}`);
      assertEquals(response.status, 200, `${method} ${path}: ${JSON.stringify(body)}`);
      const parsed = doc.response.safeParse(body);
      assert(
        parsed.success,
        `${method} ${path} does not match its schema: ${JSON.stringify(parsed.error?.issues)}`,
      );
      assert(response.headers.get("x-request-id"), "every response has a request id");
    };

    const login = await client.POST("/api/v1/auth/login", {
      body: { email: "admin@staging.example.com", password: "admin-password-1" },
    });
    check("POST", "/api/v1/auth/login", login.response, login.data);
    const headers = { Authorization: `Bearer ${login.data!.access_token}` };

    const update = await client.POST("/api/v1/specializations/progress/update", {
      headers: { ...headers, "Idempotency-Key": "typed-client-1" },
      body: { student_id: 1, specialization_id: "COACH", xp_change: 40 },
    });
    check("POST", "/api/v1/specializations/progress/update", update.response, update.data);
    const checkNow = await client.POST("/api/v1/health/check-now", { headers, body: {} });
    check("POST", "/api/v1/health/check-now", checkNow.response, checkNow.data);
    const status = await client.GET("/api/v1/health/status", { headers });
    check("GET", "/api/v1/health/status", status.response, status.data);
    const metrics = await client.GET("/api/v1/health/metrics", {
      headers,
      params: { query: { window: "1h" } },
    });
    check("GET", "/api/v1/health/metrics", metrics.response, metrics.data);
    const violations = await client.GET("/api/v1/health/violations", {
      headers,
      params: { query: { limit: 5, kind: "MISSING_LICENSE" } },
    });
    check("GET", "/api/v1/health/violations", violations.response, violations.data);
    const dryRun = await client.POST("/api/v1/health/violations/repair", {
      headers,
      body: { dry_run: true },
    });
    check("POST", "/api/v1/health/violations/repair", dryRun.response, dryRun.data);
    const repaired = await client.POST("/api/v1/health/violations/repair", {
      headers,
      body: { dry_run: false },
    });
    check("POST", "/api/v1/health/violations/repair", repaired.response, repaired.data);
    const canary = await client.GET("/api/v1/health/canary", {
      headers,
      params: { query: { window: "15m" } },
    });
    check("GET", "/api/v1/health/canary", canary.response, canary.data);
    const setRollout = await client.PUT("/api/v1/admin/rollout", {
      headers,
      body: { percent: 25, reason: "typed client" },
    });
    check("PUT", "/api/v1/admin/rollout", setRollout.response, setRollout.data);
    const rollout = await client.GET("/api/v1/admin/rollout", { headers });
    check("GET", "/api/v1/admin/rollout", rollout.response, rollout.data);
    assertEquals([rollout.data?.percent, rollout.data?.last_change?.reason], [25, "typed client"]);
    const spec = await client.GET("/api/v1/openapi.json");
    check("GET", "/api/v1/openapi.json", spec.response, spec.data);
    assertEquals([...called].sort(), API_CONTRACT.map((d) => `${d.method} ${d.path}`).sort());

    // Errors are problems, typed as the document says.
    const denied = await client.GET("/api/v1/health/status", {});
    assertEquals(denied.response.status, 401);
    assert(problemSchema.safeParse(denied.error).success, JSON.stringify(denied.error));
    const missing = await client.POST("/api/v1/specializations/progress/update", {
      headers,
      body: { student_id: 424242, specialization_id: "PLAYER", xp_change: 1 },
    });
    assertEquals(missing.response.status, 404);
    assertEquals(missing.error?.title, "Not found");
  }));

Deno.test("every documented error status of a route is one the contract can explain", () => {
  const doc = buildOpenApi(API_CONTRACT);
  for (const route of API_CONTRACT) {
    const op = (doc.paths[openapiPath(route.path)] as Record<string, { responses: Record<string, unknown> }>)[
      route.method.toLowerCase()
    ];
    const statuses = Object.keys(op.responses).map(Number);
    for (const required of [405, 429, 500]) assert(statuses.includes(required), `${route.path} ${required}`);
    if (route.body) assert(statuses.includes(413) && statuses.includes(415), `${route.path} 413/415`);
    if (route.usesDatabase !== false) assert(statuses.includes(503), `${route.path} 503`);
  }
});

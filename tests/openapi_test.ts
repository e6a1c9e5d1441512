import { assert, assertEquals } from "./_assert.ts";
import { z } from "zod";
import { API_CONTRACT } from "../routes/contract.ts";
import { protectedRoutes } from "../routes/openapi_document.ts";
import { loginBody } from "../routes/schemas.ts";
import { withTestApp } from "./_fixture.ts";

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

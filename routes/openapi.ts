/** GET /api/v1/openapi.json: the contract as an OpenAPI 3.1 document. */
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import { buildOpenApi, type RouteDoc } from "./openapi_document.ts";

/** Serves the document of `contract`, built on the first request and kept. */
export function openapiRoutes({ contract }: { contract: readonly RouteDoc[] }) {
  const app = new Hono<AppEnv>();
  let body: string | undefined;
  app.get("/api/v1/openapi.json", (c) => {
    body ??= JSON.stringify(buildOpenApi(contract));
    c.header("Cache-Control", "no-cache");
    return c.body(body, 200, { "Content-Type": "application/json" });
  });
  return app;
}

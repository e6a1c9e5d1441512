/** Ops endpoints: liveness and readiness. */
import { Hono } from "hono";
import { checkReadiness } from "../lib/readiness.ts";
import type { AppEnv } from "./env.ts";

/** `/healthz` (the process is alive) and `/readyz` (database reachable, migrations current). */
export function opsRoutes() {
  const app = new Hono<AppEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const { sql, migrations } = c.get("deps");
    const result = await checkReadiness(sql, migrations);
    c.header("Cache-Control", "no-store");
    if (result.ready) return c.json({ status: "ready" });
    return c.json({ status: "not_ready", reason: result.reason }, 503);
  });
  return app;
}

/** Ops endpoints: liveness and readiness. */
import { Hono } from "hono";
import type { Sql } from "../lib/db.ts";
import type { Migration } from "../lib/migrate.ts";
import { checkReadiness } from "../lib/readiness.ts";
import type { AppEnv } from "./env.ts";

/** `/healthz` (the process is alive) and `/readyz` (database reachable, migrations current). */
export function opsRoutes({ sql, migrations }: { sql: Sql; migrations: Migration[] }) {
  const app = new Hono<AppEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const result = await checkReadiness(sql, migrations);
    c.header("Cache-Control", "no-store");
    if (result.ready) return c.json({ status: "ready" });
    return c.json({ status: "not_ready", reason: result.reason }, 503);
  });
  return app;
}

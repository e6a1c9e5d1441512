/** Ops endpoints: liveness and readiness. */
import { Hono } from "hono";
import type { Sql } from "../lib/db.ts";
import type { Migration } from "../lib/migrate.ts";
import type { Replica } from "../lib/replica.ts";
import { checkReadiness } from "../lib/readiness.ts";
import type { AppEnv } from "./env.ts";

/**
 * `/healthz` (the process is alive) and `/readyz` (database reachable, migrations current; with a
 * replica configured, whether heavy reads use it, or why they went back to the primary).
 */
export function opsRoutes(
  { sql, migrations, replica }: { sql: Sql; migrations: Migration[]; replica?: Replica },
) {
  const app = new Hono<AppEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const result = await checkReadiness(sql, migrations);
    c.header("Cache-Control", "no-store");
    const reads = replica
      ? {
        replica: replica.state.usable
          ? { in_use: true, lag_s: replica.state.lagS }
          : { in_use: false, reason: replica.state.reason },
      }
      : {};
    if (result.ready) return c.json({ status: "ready", ...reads });
    return c.json({ status: "not_ready", reason: result.reason }, 503);
  });
  return app;
}

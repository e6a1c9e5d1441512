/** Ops endpoints: liveness and readiness. */
import { Hono } from "hono";
import type { Sql } from "../lib/db.ts";
import type { Migration } from "../lib/migrate.ts";
import { publicReplicaReason, type Replica } from "../lib/replica.ts";
import { cachedReadiness, checkReadiness } from "../lib/readiness.ts";
import type { AppEnv } from "./env.ts";

/**
 * `/healthz` (the process is alive) and `/readyz` (database reachable, migrations current; with a
 * replica configured, whether heavy reads use it, or why they went back to the primary). The
 * public learns ready or unavailable, never an error's text (the log has it), and probes share
 * one database round trip a second (lib/readiness.ts).
 */
export function opsRoutes(
  { sql, migrations, replica }: { sql: Sql; migrations: Migration[]; replica?: Replica },
) {
  const app = new Hono<AppEnv>();
  const readiness = cachedReadiness(() => checkReadiness(sql, migrations));
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const result = await readiness();
    if (!result.ready) return c.json({ status: "unavailable" }, 503);
    const reads = replica
      ? {
        replica: replica.state.usable
          ? { in_use: true, lag_s: replica.state.lagS }
          : { in_use: false, reason: publicReplicaReason(replica.state.reason) },
      }
      : {};
    return c.json({ status: "ready", ...reads });
  });
  return app;
}

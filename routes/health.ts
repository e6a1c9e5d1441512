/** /api/v1/health/*: integrity status, metrics, violations, check-now and repair (ADMIN only). */
import { Hono } from "hono";
import { NotFound, Unavailable } from "../lib/errors.ts";
import { healthMetrics } from "../lib/integrity/metrics.ts";
import { repair } from "../lib/integrity/repair.ts";
import { healthReport } from "../lib/integrity/report.ts";
import { runnerFor } from "../lib/integrity/runner.ts";
import { listViolations } from "../lib/integrity/violations.ts";
import type { Queryable } from "../lib/db.ts";
import { checkNowBody, metricsQuery, repairBody, violationsQuery } from "../lib/schemas.ts";
import { type AuthEnv, requireRole } from "./middleware/auth.ts";
import { jsonBody, query } from "./middleware/validate.ts";

async function requireUser(sql: Queryable, id: number) {
  const [row] = await sql`SELECT 1 FROM users WHERE id = ${id}`;
  if (!row) throw new NotFound(`No user with id ${id}`);
}

/** The health API; mount under /api/v1/health. */
export function healthRoutes() {
  const app = new Hono<AuthEnv>();
  app.use("*", requireRole("ADMIN"));
  app.use("*", async (c, next) => {
    await next();
    c.header("Cache-Control", "no-store");
  });

  app.get("/status", async (c) => {
    const { sql, config } = c.get("deps");
    const running = runnerFor(sql, config).fullCheckRunning;
    return c.json(await healthReport(sql, config, running));
  });

  app.get("/metrics", query(metricsQuery), async (c) => {
    return c.json(await healthMetrics(c.get("deps").sql, c.req.valid("query").window));
  });

  app.get("/violations", query(violationsQuery), async (c) => {
    return c.json(await listViolations(c.get("deps").sql, c.req.valid("query")));
  });

  app.post("/check-now", ...jsonBody(checkNowBody, { optional: true }), async (c) => {
    const { sql, config } = c.get("deps");
    const userId = c.req.valid("json").user_id ?? null;
    if (userId !== null) await requireUser(sql, userId);
    const check = await runnerFor(sql, config).run("manual", userId);
    if (check.outcome === "failure") {
      throw new Unavailable(`Integrity check ${check.id} failed: ${check.error}`);
    }
    return c.json(check);
  });

  app.post("/violations/repair", ...jsonBody(repairBody), async (c) => {
    const { sql } = c.get("deps");
    const body = c.req.valid("json");
    if (body.student_id !== undefined) await requireUser(sql, body.student_id);
    const result = await repair(sql, {
      studentId: body.student_id,
      dryRun: body.dry_run,
      actorId: c.get("principal").userId,
    });
    return c.json(result);
  });
  return app;
}

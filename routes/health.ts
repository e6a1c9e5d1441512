/** /api/v1/health/*: integrity status, metrics, violations, check-now and repair (ADMIN only). */
import { Hono } from "hono";
import type { AccountLookup } from "../lib/accounts.ts";
import { canaryReport } from "../lib/canary/verdict.ts";
import type { RequestStats } from "../lib/canary/request_stats.ts";
import type { Sql } from "../lib/db.ts";
import type { Metrics } from "../lib/metrics.ts";
import { Unavailable } from "../lib/errors.ts";
import { healthMetrics } from "../lib/integrity/health_metrics.ts";
import { repairAndCheck } from "../lib/integrity/repair.ts";
import type { IntegrityRunner } from "../lib/integrity/runner.ts";
import type { StatusCache } from "../lib/integrity/status_cache.ts";
import { listViolations } from "../lib/integrity/violations.ts";
import { requireUser } from "../lib/users.ts";
import type { AuthEnv } from "./env.ts";
import { roleGuard } from "./middleware/require_role.ts";
import { jsonBody, query } from "./middleware/validate.ts";
import { canaryQuery, checkNowBody, metricsQuery, repairBody, violationsQuery } from "./schemas.ts";

/** What the health API needs. */
export interface HealthDeps {
  sql: Sql;
  runner: IntegrityRunner;
  /** The status report, kept in memory between check events. */
  status: StatusCache;
  tokenKey: Uint8Array;
  /** The accounts tokens speak for, as they are now. */
  accounts: AccountLookup;
  metrics: Metrics;
  requestStats: RequestStats;
  /** CANARY_STEP_HOURS. */
  soakHours: number;
  /** Where heavy reads go (the replica while it is usable). */
  reads: () => Sql;
  /** REQUEST_BODY_TIMEOUT_MS. */
  bodyTimeoutMs: number;
}

/** The health API; mount under /api/v1/health. */
export function healthRoutes(
  { sql, runner, status, tokenKey, accounts, metrics, requestStats, soakHours, reads, bodyTimeoutMs }:
    HealthDeps,
) {
  const app = new Hono<AuthEnv>();
  // On each route rather than "*": a method a path does not serve is 405, not 401.
  const admin = roleGuard(tokenKey, accounts)("ADMIN");

  app.get("/status", admin, async (c) => {
    return c.body(await status.json(), 200, { "Content-Type": "application/json" });
  });

  app.get("/metrics", admin, query(metricsQuery), async (c) => {
    return c.json(await healthMetrics(reads(), c.req.valid("query").window));
  });

  app.get("/canary", admin, query(canaryQuery), async (c) => {
    // This instance's latest requests count too (the others flush every few seconds).
    await requestStats.flush().catch(() => {});
    return c.json(await canaryReport(sql, { window: c.req.valid("query").window, soakHours }));
  });

  app.get("/violations", admin, query(violationsQuery), async (c) => {
    return c.json(await listViolations(reads(), c.req.valid("query")));
  });

  app.post(
    "/check-now",
    admin,
    jsonBody(checkNowBody, { timeoutMs: bodyTimeoutMs, optional: true }),
    async (c) => {
      const userId = c.req.valid("json").user_id ?? null;
      if (userId !== null) await requireUser(sql, userId);
      metrics.manualChecks.inc();
      const check = await runner.run("manual", userId);
      if (check.outcome === "failure") {
        throw new Unavailable(`Integrity check ${check.id} failed: ${check.error}`);
      }
      return c.json(check);
    },
  );

  app.post("/violations/repair", admin, jsonBody(repairBody, { timeoutMs: bodyTimeoutMs }), async (c) => {
    const body = c.req.valid("json");
    if (body.student_id !== undefined) await requireUser(sql, body.student_id);
    const result = await repairAndCheck(sql, runner, {
      studentId: body.student_id,
      dryRun: body.dry_run,
      actorId: c.get("principal").userId,
    });
    metrics.recordRepair(result);
    return c.json(result);
  });
  return app;
}

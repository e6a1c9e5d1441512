/** GET /health/status: the last finished full check, read with one indexed query (no scan). */
import { z } from "zod";
import type { Config } from "../config.ts";
import type { Queryable } from "../db.ts";
import { nextCronTime } from "./cron_next.ts";
import { SCAN_LOCK_KEY } from "./scan_lock.ts";
import { DEGRADED_MIN_RATE, HEALTHY_MIN_RATE } from "./status.ts";
import { checkColumns, type CheckRecord, checkRecordSchema } from "./store.ts";

/** The body of GET /api/v1/health/status: the schema is the type. */
export const healthReportSchema = z.strictObject({
  status: z.enum(["healthy", "degraded", "critical", "unknown"]),
  consistency_rate: z.number().min(0).max(1).nullable(),
  pairs_checked: z.int().nullable(),
  consistent_pairs: z.int().nullable(),
  violation_count: z.int().nullable(),
  violations_by_kind: checkRecordSchema.shape.counts_by_kind,
  last_check: checkRecordSchema.nullable(),
  next_check_at: z.iso.datetime().nullable(),
  /** True while any instance runs a full check. */
  scan_running: z.boolean(),
  thresholds: z.strictObject({ healthy: z.number(), degraded: z.number() }),
});

/** The status report. */
export type HealthReport = z.infer<typeof healthReportSchema>;

/** Builds the status report; `runningHere` is this process's own view of a running full check. */
export async function healthReport(
  q: Queryable,
  config: Pick<Config, "SCAN_ENABLED" | "SCAN_CRON">,
  runningHere: boolean,
): Promise<HealthReport> {
  // The advisory lock is held exactly while some instance runs a full check.
  const [row] = await q<(CheckRecord & { scan_running: boolean; found: boolean })[]>`
    SELECT c.*, c.id IS NOT NULL AS found, EXISTS (
      SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = ${SCAN_LOCK_KEY} AND objsubid = 1
        -- Advisory locks are per database; other databases on the server are other deployments.
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    ) AS scan_running
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (SELECT ${checkColumns(q)} FROM latest_full_check) c ON true`;
  const { scan_running, found, ...check } = row;
  const next = config.SCAN_ENABLED ? nextCronTime(config.SCAN_CRON) : null;
  return {
    status: found ? check.status! : "unknown",
    consistency_rate: found ? check.consistency_rate : null,
    pairs_checked: found ? check.pairs_checked : null,
    consistent_pairs: found ? check.consistent_pairs : null,
    violation_count: found ? check.violation_count : null,
    violations_by_kind: found ? check.counts_by_kind : null,
    last_check: found ? check : null,
    next_check_at: next ? next.toISOString() : null,
    scan_running: scan_running || runningHere,
    thresholds: { healthy: HEALTHY_MIN_RATE, degraded: DEGRADED_MIN_RATE },
  };
}

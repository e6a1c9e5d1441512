/** GET /health/metrics: aggregates and history of full checks over a time window. */
import { z } from "zod";
import type { Queryable } from "../db.ts";

/** Windows the API offers, with the width of one history point. */
export const METRIC_WINDOWS = {
  "1h": { hours: 1, bucketSeconds: 60 },
  "24h": { hours: 24, bucketSeconds: 300 },
  "7d": { hours: 168, bucketSeconds: 3600 },
} as const;

/** One of the windows. */
export type MetricWindow = keyof typeof METRIC_WINDOWS;

const nullableNumber = z.number().nullable();

/** One history point: the successful full checks that started in one bucket. */
const historyPointSchema = z.strictObject({
  at: z.iso.datetime(),
  checks: z.int(),
  consistency_rate: z.number(),
  min_consistency_rate: z.number(),
  violation_count: z.int(),
  duration_ms: z.number(),
});

/** The body of GET /api/v1/health/metrics: the schema is the type. */
export const healthMetricsSchema = z.strictObject({
  window: z.enum(["1h", "24h", "7d"]),
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  checks: z.strictObject({ success: z.int(), failure: z.int(), skipped: z.int(), running: z.int() }),
  /**
   * Scheduled runs only. success_rate = success / (success + failure): a run
   * skipped because another instance held the scan lock is not a failure (that
   * instance ran the tick); null when no scheduled run finished.
   */
  scheduler: z.strictObject({
    success: z.int(),
    failure: z.int(),
    skipped: z.int(),
    success_rate: nullableNumber,
  }),
  consistency_rate: z.strictObject({ avg: nullableNumber, min: nullableNumber, latest: nullableNumber }),
  violations: z.strictObject({ avg: nullableNumber, max: nullableNumber, latest: nullableNumber }),
  duration_ms: z.strictObject({ p50: nullableNumber, p95: nullableNumber, max: nullableNumber }),
  history: z.strictObject({ bucket_seconds: z.int(), points: z.array(historyPointSchema) }),
});

/** One history point. */
export type HistoryPoint = z.infer<typeof historyPointSchema>;
/** The metrics of a window. */
export type HealthMetrics = z.infer<typeof healthMetricsSchema>;

/** Aggregates the full checks that started within the window. */
export async function healthMetrics(q: Queryable, window: MetricWindow): Promise<HealthMetrics> {
  const { hours, bucketSeconds } = METRIC_WINDOWS[window];
  const [a] = await q`
    WITH bounds AS (SELECT now() - make_interval(hours => ${hours}) AS from_at, now() AS to_at),
    runs AS (
      SELECT c.* FROM integrity_checks c, bounds
      WHERE c.scope_user_id IS NULL AND c.started_at >= bounds.from_at
    ), latest AS (
      SELECT consistency_rate, violation_count FROM latest_full_check, bounds WHERE started_at >= bounds.from_at
    )
    SELECT
      (SELECT iso_utc(from_at) FROM bounds) AS from_at,
      (SELECT iso_utc(to_at) FROM bounds) AS to_at,
      count(*) FILTER (WHERE outcome = 'success')::int AS success,
      count(*) FILTER (WHERE outcome = 'failure')::int AS failure,
      count(*) FILTER (WHERE outcome = 'skipped')::int AS skipped,
      count(*) FILTER (WHERE outcome = 'running')::int AS running,
      count(*) FILTER (WHERE trigger = 'schedule' AND outcome = 'success')::int AS s_success,
      count(*) FILTER (WHERE trigger = 'schedule' AND outcome = 'failure')::int AS s_failure,
      count(*) FILTER (WHERE trigger = 'schedule' AND outcome = 'skipped')::int AS s_skipped,
      avg(consistency_rate) FILTER (WHERE outcome = 'success') AS rate_avg,
      min(consistency_rate) FILTER (WHERE outcome = 'success') AS rate_min,
      avg(violation_count) FILTER (WHERE outcome = 'success')::float8 AS violations_avg,
      max(violation_count) FILTER (WHERE outcome = 'success') AS violations_max,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE outcome = 'success') AS p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE outcome = 'success') AS p95,
      max(duration_ms) FILTER (WHERE outcome = 'success') AS duration_max,
      (SELECT consistency_rate FROM latest) AS rate_latest,
      (SELECT violation_count FROM latest) AS violations_latest
    FROM runs`;
  const points = await q<HistoryPoint[]>`
    SELECT iso_utc(bucket) AS at, checks,
           consistency_rate, min_consistency_rate, violation_count, duration_ms
    FROM (
      SELECT date_bin(make_interval(secs => ${bucketSeconds}), started_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
             count(*)::int AS checks, avg(consistency_rate) AS consistency_rate,
             min(consistency_rate) AS min_consistency_rate, max(violation_count) AS violation_count,
             max(duration_ms) AS duration_ms
      FROM integrity_checks
      WHERE scope_user_id IS NULL AND outcome = 'success'
        AND started_at >= now() - make_interval(hours => ${hours})
      GROUP BY 1
    ) b ORDER BY bucket`;
  const finished = a.s_success + a.s_failure;
  return {
    window,
    from: a.from_at,
    to: a.to_at,
    checks: { success: a.success, failure: a.failure, skipped: a.skipped, running: a.running },
    scheduler: {
      success: a.s_success,
      failure: a.s_failure,
      skipped: a.s_skipped,
      success_rate: finished ? a.s_success / finished : null,
    },
    consistency_rate: { avg: a.rate_avg, min: a.rate_min, latest: a.rate_latest ?? null },
    violations: { avg: a.violations_avg, max: a.violations_max, latest: a.violations_latest ?? null },
    duration_ms: { p50: a.p50, p95: a.p95, max: a.duration_max },
    history: { bucket_seconds: bucketSeconds, points: [...points] },
  };
}

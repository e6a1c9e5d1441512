/**
 * GET /api/v1/health/canary: the plan's canary metrics over a window, from
 * data every instance shares (integrity_checks, request_stats), each with its
 * value, baseline, threshold and verdict, and the overall verdict.
 */
import { z } from "zod";
import type { Queryable } from "../db.ts";
import { CANARY_RULES, judgeMetric, nextStep, overallVerdict } from "./plan.ts";
import { windowFigures } from "./request_stats.ts";
import { rolloutState } from "./rollout.ts";

/** The windows a report can cover. */
export const CANARY_WINDOWS = { "15m": 15, "1h": 60, "6h": 360, "24h": 1440 } as const;

/** A window name. */
export type CanaryWindow = keyof typeof CANARY_WINDOWS;

const metricSchema = z.strictObject({
  name: z.enum(["consistency_rate", "api_p95_ms", "error_rate", "scheduler_success_rate"]),
  description: z.string(),
  value: z.number().nullable(),
  baseline: z.number(),
  threshold: z.number(),
  /** What passing the threshold means. */
  past_threshold: z.enum(["investigate", "rollback"]),
  unit: z.enum(["ratio", "ms"]),
  /** How many checks or requests the value comes from. */
  samples: z.int(),
  verdict: z.enum(["proceed", "investigate", "rollback", "no_data"]),
});

/** The body of GET /api/v1/health/canary. */
export const canaryReportSchema = z.strictObject({
  window: z.enum(Object.keys(CANARY_WINDOWS) as [CanaryWindow, ...CanaryWindow[]]),
  evaluated_at: z.iso.datetime(),
  rollout: z.strictObject({
    percent: z.int(),
    /** Where `canary advance` goes next (null at 100). */
    next_step: z.int().nullable(),
    /** When the current percentage was set (null if never changed since install). */
    step_started_at: z.iso.datetime().nullable(),
    soak_hours: z.number(),
    /** The step has run at least `soak_hours` (or was never changed). */
    soaked: z.boolean(),
  }),
  metrics: z.array(metricSchema),
  verdict: z.enum(["proceed", "investigate", "rollback"]),
  /** One line per metric that is not `proceed`, saying why. */
  reasons: z.array(z.string()),
});

/** The canary report. */
export type CanaryReport = z.infer<typeof canaryReportSchema>;

const DESCRIPTIONS = {
  consistency_rate: "lowest consistency rate of the full checks that finished in the window",
  api_p95_ms: "95th percentile latency of the requests of admins in the rollout (all instances)",
  error_rate: "share of the requests of admins in the rollout answered with a 5xx",
  scheduler_success_rate: "share of scheduled checks that succeeded (skipped runs not counted)",
} as const;

/** Builds the report over `window`, with `soakHours` as the step's minimum soak (CANARY_STEP_HOURS). */
export async function canaryReport(
  q: Queryable,
  options: { window: CanaryWindow; soakHours: number; now?: Date },
): Promise<CanaryReport> {
  const now = options.now ?? new Date();
  const since = new Date(now.getTime() - CANARY_WINDOWS[options.window] * 60_000);
  const [checks] = await q<{ consistency: number | null; full: number; scheduled: number; ok: number }[]>`
    SELECT min(consistency_rate) FILTER (WHERE outcome = 'success') AS consistency,
      count(*) FILTER (WHERE outcome = 'success')::int AS full,
      count(*) FILTER (WHERE trigger = 'schedule')::int AS scheduled,
      count(*) FILTER (WHERE trigger = 'schedule' AND outcome = 'success')::int AS ok
    FROM integrity_checks
    WHERE scope_user_id IS NULL AND outcome IN ('success', 'failure') AND finished_at >= ${since}`;
  const requests = await windowFigures(q, "canary", since);
  const state = await rolloutState(q);

  const values = {
    consistency_rate: { value: checks.consistency, samples: checks.full },
    api_p95_ms: { value: requests.p95Ms, samples: requests.requests },
    error_rate: {
      value: requests.requests ? requests.errors / requests.requests : null,
      samples: requests.requests,
    },
    scheduler_success_rate: {
      value: checks.scheduled ? checks.ok / checks.scheduled : null,
      samples: checks.scheduled,
    },
  };
  const metrics = CANARY_RULES.map((rule) => ({
    name: rule.name,
    description: DESCRIPTIONS[rule.name],
    ...values[rule.name],
    baseline: rule.baseline,
    threshold: rule.threshold,
    past_threshold: rule.verdictPast,
    unit: rule.unit,
    verdict: judgeMetric(rule, values[rule.name].value),
  }));
  const startedAt = state.last_change?.at ?? null;
  const soaked = startedAt === null ||
    now.getTime() - new Date(startedAt).getTime() >= options.soakHours * 3_600_000;
  return {
    window: options.window,
    evaluated_at: now.toISOString(),
    rollout: {
      percent: state.percent,
      next_step: nextStep(state.percent),
      step_started_at: startedAt,
      soak_hours: options.soakHours,
      soaked,
    },
    metrics,
    verdict: overallVerdict(metrics.map((m) => m.verdict)),
    reasons: metrics.filter((m) => m.verdict !== "proceed").map(reasonFor),
  };
}

const NO_DATA = {
  consistency_rate: "no full check finished in the window",
  api_p95_ms: "no requests from admins in the rollout in the window",
  error_rate: "no requests from admins in the rollout in the window",
  scheduler_success_rate: "no scheduled check finished in the window",
} as const;

function show(value: number, unit: "ratio" | "ms"): string {
  return unit === "ms" ? `${value.toFixed(1)} ms` : `${(value * 100).toFixed(2)} %`;
}

function reasonFor(m: CanaryReport["metrics"][number]): string {
  if (m.value === null) return `${m.name}: ${NO_DATA[m.name]}`;
  const past = m.verdict === m.past_threshold;
  const limit = past ? m.threshold : m.baseline;
  const side = (m.unit === "ms" || m.name === "error_rate") ? "above" : "below";
  return `${m.name} ${show(m.value, m.unit)} is ${side} ${past ? "the threshold" : "the baseline"} ` +
    `${show(limit, m.unit)} (${m.verdict})`;
}

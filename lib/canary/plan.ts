/**
 * The production readiness plan's canary, as data: the rollout steps and, per
 * metric, the baseline and the threshold past which the verdict changes.
 */

/** The rollout percentages `canary advance` walks through, in order. */
export const ROLLOUT_STEPS = [5, 25, 50, 100] as const;

/** A canary metric's verdict; `no_data` when nothing was measured in the window. */
export type MetricVerdict = "proceed" | "investigate" | "rollback" | "no_data";

/** The overall verdict. */
export type Verdict = "proceed" | "investigate" | "rollback";

/** How one metric is judged. */
export interface MetricRule {
  name: "consistency_rate" | "api_p95_ms" | "error_rate" | "scheduler_success_rate";
  /** What "good" looks like (the plan's baseline). */
  baseline: number;
  /** Past this value the verdict is `verdictPast`. */
  threshold: number;
  verdictPast: "investigate" | "rollback";
  /** Whether higher values are better (rates) or worse (latency, errors). */
  higherIsBetter: boolean;
  unit: "ratio" | "ms";
}

/** The plan's four canary metrics. */
export const CANARY_RULES: readonly MetricRule[] = [
  // Consistency: baseline 99.5 %, rollback below 98 %.
  {
    name: "consistency_rate",
    baseline: 0.995,
    threshold: 0.98,
    verdictPast: "rollback",
    higherIsBetter: true,
    unit: "ratio",
  },
  // API p95 latency: baseline 50 ms, investigate above 200 ms.
  {
    name: "api_p95_ms",
    baseline: 50,
    threshold: 200,
    verdictPast: "investigate",
    higherIsBetter: false,
    unit: "ms",
  },
  // Error rate: baseline under 0.1 %, rollback above 1 %.
  {
    name: "error_rate",
    baseline: 0.001,
    threshold: 0.01,
    verdictPast: "rollback",
    higherIsBetter: false,
    unit: "ratio",
  },
  // Scheduler success: baseline 100 %, rollback below 99 %.
  {
    name: "scheduler_success_rate",
    baseline: 1,
    threshold: 0.99,
    verdictPast: "rollback",
    higherIsBetter: true,
    unit: "ratio",
  },
];

/**
 * One metric's verdict: past the threshold, the rule's verdict; between the
 * baseline and the threshold, `investigate` for rules that roll back (worse
 * than normal, not yet bad enough) and `proceed` for the latency rule (the
 * plan only asks to investigate above 200 ms); at or better than the
 * baseline, `proceed`.
 */
export function judgeMetric(rule: MetricRule, value: number | null): MetricVerdict {
  if (value === null || Number.isNaN(value)) return "no_data";
  const worseThan = (limit: number) => rule.higherIsBetter ? value < limit : value > limit;
  if (worseThan(rule.threshold)) return rule.verdictPast;
  if (worseThan(rule.baseline) && rule.verdictPast === "rollback") return "investigate";
  return "proceed";
}

/**
 * The overall verdict: any `rollback` rolls back; any `investigate`, or a
 * metric with no data (no evidence is no reason to widen), investigates.
 */
export function overallVerdict(verdicts: readonly MetricVerdict[]): Verdict {
  if (verdicts.includes("rollback")) return "rollback";
  if (verdicts.includes("investigate") || verdicts.includes("no_data")) return "investigate";
  return "proceed";
}

/** The step after `percent` (null at 100). */
export function nextStep(percent: number): number | null {
  return ROLLOUT_STEPS.find((step) => step > percent) ?? null;
}

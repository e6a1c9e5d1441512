/** `canary advance`: the next step of the plan, only when the canary says so. */
import type { Sql } from "../db.ts";
import type { CanaryReport } from "./verdict.ts";
import { type RolloutChange, rolloutPercent, type RolloutRequest, setRollout } from "./rollout.ts";

/** Why advancing is refused now, or null when it may go ahead (`force` skips the checks). */
export function advanceRefusal(report: CanaryReport, force: boolean): string | null {
  const { percent, next_step, step_started_at, soak_hours, soaked } = report.rollout;
  if (next_step === null) return "the rollout is already at 100 %";
  // From 0 % nothing has been exposed yet: starting the canary needs no evidence.
  if (force || percent === 0) return null;
  if (report.verdict !== "proceed") {
    return `the verdict is ${report.verdict} (${report.reasons.join("; ")}); fix it, or use --force`;
  }
  if (!soaked) {
    const until = new Date(new Date(step_started_at!).getTime() + soak_hours * 3_600_000);
    return `the ${percent} % step started at ${step_started_at} and must soak ${soak_hours} h ` +
      `(CANARY_STEP_HOURS), until ${until.toISOString()}; or use --force`;
  }
  return null;
}

/** Who advances and why; `force` skips the verdict and the soak time. */
export type AdvanceRequest = Omit<RolloutRequest, "percent" | "onlyFrom"> & { force: boolean };

/** The change made, or why not (nothing written). */
export type AdvanceOutcome = { change: RolloutChange; refused?: undefined } | {
  change?: undefined;
  refused: string;
};

/**
 * Advances one step from the step `report` evaluated, as a compare-and-set:
 * when the rollout changed after the evaluation (another advance, a rollback,
 * a set, even one that came back to the same percentage), nothing is written,
 * so two advances at once make one change, never 5 -> 25 -> 50 or 25 -> 25.
 */
export async function advanceRollout(
  sql: Sql,
  report: CanaryReport,
  request: AdvanceRequest,
): Promise<AdvanceOutcome> {
  const refused = advanceRefusal(report, request.force);
  if (refused) return { refused };
  const { force: _, ...who } = request;
  const change = await setRollout(sql, {
    ...who,
    percent: report.rollout.next_step!,
    onlyFrom: fromEvaluatedStep(report),
  });
  if (change) return { change };
  return { refused: changedMeanwhile(report, await rolloutPercent(sql)) };
}

/** setRollout's compare-and-set for an advance: the percentage and the step `report` evaluated. */
export function fromEvaluatedStep(report: CanaryReport): RolloutRequest["onlyFrom"] {
  const { percent, step_started_at } = report.rollout;
  return (current, lastChangeAt) => current === percent && lastChangeAt === step_started_at;
}

/** Why an advance that lost the compare-and-set wrote nothing. */
export function changedMeanwhile(report: CanaryReport, nowPercent: number): string {
  return `the rollout changed while this advance was being decided (it was ${report.rollout.percent} %, ` +
    `it is ${nowPercent} % now); look at canary status and advance again if it should`;
}

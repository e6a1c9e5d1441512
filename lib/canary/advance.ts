/** `canary advance`: the next step of the plan, only when the canary says so. */
import type { CanaryReport } from "./report.ts";

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

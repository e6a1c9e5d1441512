/** Health status from a consistency rate: the SPEC's thresholds, named in one place. */

/** At or above this rate the data is healthy. */
export const HEALTHY_MIN_RATE = 0.99;
/** At or above this rate (and below healthy) the data is degraded; below it, critical. */
export const DEGRADED_MIN_RATE = 0.95;

/** Status of a finished check. */
export type CheckStatus = "healthy" | "degraded" | "critical";
/** Status reported by the API: `unknown` before the first finished check. */
export type HealthStatus = CheckStatus | "unknown";

/** Maps a consistency rate (0..1) to its status. */
export function statusFor(rate: number): CheckStatus {
  if (rate >= HEALTHY_MIN_RATE) return "healthy";
  if (rate >= DEGRADED_MIN_RATE) return "degraded";
  return "critical";
}

/** Consistent pairs / checked pairs; 1.0 when there is nothing to check. */
export function consistencyRate(consistent: number, checked: number): number {
  return checked === 0 ? 1 : consistent / checked;
}

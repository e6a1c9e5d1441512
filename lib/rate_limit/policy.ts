/** Rate-limit policy: one fixed one-minute window per client, and the IETF headers that describe it. */

/** The window `RATE_LIMIT_PER_MINUTE` counts over. */
export const RATE_LIMIT_WINDOW_MS = 60_000;

/** Paths that are never limited: probes and scrapes must work while a client is throttled. */
export const RATE_LIMIT_FREE_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * Prefixes that are never limited: the dashboard's assets (versioned URLs,
 * cached `immutable`, a file read each) are not API use; counted, 105 reloads
 * of a page's stylesheet locked the API out for that address.
 */
export const RATE_LIMIT_FREE_PREFIXES: readonly string[] = ["/static/"];

/** True for a path the limiter does not count (RATE_LIMIT_FREE_PATHS, RATE_LIMIT_FREE_PREFIXES). */
export function rateLimitFree(path: string): boolean {
  return RATE_LIMIT_FREE_PATHS.has(path) ||
    RATE_LIMIT_FREE_PREFIXES.some((prefix) => path.startsWith(prefix));
}

// Policy name shown in the headers (draft-ietf-httpapi-ratelimit-headers, structured fields).
const POLICY = "per-ip";

/** What the limiter knows about a client after counting its request. */
export interface RateLimitState {
  limit: number;
  used: number;
  /** Seconds until the window resets (at least 1). */
  resetSeconds: number;
}

/** Seconds from now until `resetTime` (at least 1, at most one window). */
export function secondsUntil(resetTime: Date | undefined, now = Date.now()): number {
  const window = RATE_LIMIT_WINDOW_MS / 1000;
  if (!resetTime) return window;
  return Math.min(window, Math.max(1, Math.ceil((resetTime.getTime() - now) / 1000)));
}

/**
 * `RateLimit-Policy` and `RateLimit` as in draft-ietf-httpapi-ratelimit-headers
 * (-08 to -11): `"per-ip";q=100;w=60` and `"per-ip";r=37;t=42`.
 */
export function rateLimitHeaders(state: RateLimitState): Record<string, string> {
  const window = RATE_LIMIT_WINDOW_MS / 1000;
  const remaining = Math.max(0, state.limit - state.used);
  return {
    "RateLimit-Policy": `"${POLICY}";q=${state.limit};w=${window}`,
    "RateLimit": `"${POLICY}";r=${remaining};t=${state.resetSeconds}`,
  };
}

/**
 * Feeds the shared request figures the canary judges (lib/canary/request_stats.ts):
 * every answered API or dashboard request, in the `canary` cohort when an
 * admin in the rollout made it. Probes, scrapes, static files and the
 * dashboard's event stream (open for minutes by design) are left out.
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { inRollout } from "../../lib/canary/bucket.ts";
import type { RequestStats } from "../../lib/canary/request_stats.ts";
import type { RolloutCache } from "../../lib/canary/rollout_cache.ts";
import { routeLabel } from "./metrics.ts";

const LEFT_OUT = new Set(["/healthz", "/readyz", "/metrics", "/admin/health/events"]);

/** The admin who made the request, when a token or a session says so. */
function adminId(c: Context): number | null {
  // c.get, not c.var: c.var builds a new object from all the request's variables on every read.
  const who = (c.get("principal") ?? c.get("session")) as { userId: number; role: string } | undefined;
  return who?.role === "ADMIN" ? who.userId : null;
}

/** Records each request after it is answered. */
export function requestStats(stats: RequestStats, rollout: RolloutCache) {
  return createMiddleware(async (c, next) => {
    const start = performance.now();
    await next();
    const route = routeLabel(c);
    if (LEFT_OUT.has(route) || route.startsWith("/static/")) return;
    const admin = adminId(c);
    // Never waits on the database (the answer is already sent); start-up reads the percentage once.
    const canary = admin !== null && inRollout(admin, rollout.peek() ?? 100);
    // A server error (5xx) is what the canary counts against a release; a refused request is not.
    stats.record(canary ? "canary" : "other", c.res.status >= 500, performance.now() - start);
  });
}

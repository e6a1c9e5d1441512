/**
 * HTTP metrics: requests in flight, and per answered request a count and a
 * duration labelled by method, route pattern (never the raw path: ids would
 * explode the series) and status class; 429s and database refusals counted.
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { DatabaseDown, DatabaseUnavailable } from "../../lib/errors.ts";
import type { Metrics } from "../../lib/metrics.ts";
import { unavailability } from "../../lib/retry.ts";

/** The route pattern that answered, or `unmatched` when no handler did (404/405). */
export function routeLabel(c: Context): string {
  const last = c.req.matchedRoutes.at(-1);
  // Only middleware (app.use, method ALL) matched: no route has this path.
  if (!last || (last.method === "ALL" && c.res.status >= 404 && c.res.status <= 405)) return "unmatched";
  return last.path;
}

/** What kind of database failure ended a request, if any. */
function databaseErrorKind(err: unknown): "down" | "busy" | "query" | null {
  if (err instanceof DatabaseDown || err instanceof DatabaseUnavailable) return "down";
  const outage = unavailability(err);
  if (outage) return outage;
  // A PostgreSQL error (five-character SQLSTATE) that is not an outage: a failed query.
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? "query" : null;
}

/** Measures every request (registered first, so it sees the final status). */
export function httpMetrics(metrics: Metrics) {
  return createMiddleware(async (c, next) => {
    const start = performance.now();
    metrics.httpInFlight.inc();
    try {
      await next();
    } finally {
      metrics.httpInFlight.dec();
      const labels = {
        method: c.req.method,
        route: routeLabel(c),
        status_class: `${Math.floor(c.res.status / 100)}xx`,
      };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, (performance.now() - start) / 1000);
      if (c.res.status === 429) metrics.rateLimited.inc();
      const kind = c.error ? databaseErrorKind(c.error) : null;
      if (kind) metrics.databaseErrors.inc({ kind });
    }
  });
}

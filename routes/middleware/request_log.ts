/**
 * One JSON log line per request, with the fields log pipelines filter on:
 * level, msg, request_id, method, route (the pattern), path, status,
 * duration_ms, and user_id once the caller is known (token or session).
 */
import { createMiddleware } from "hono/factory";
import { log } from "../../lib/log.ts";
import { routeLabel } from "./metrics.ts";

/** Who made the request, when a token or a dashboard session said so. */
function userId(vars: Record<string, unknown>): number | undefined {
  const principal = vars.principal as { userId?: number } | undefined;
  const session = vars.session as { userId?: number } | undefined;
  return principal?.userId ?? session?.userId;
}

/** Logs each request after it is answered. */
export const requestLog = createMiddleware(async (c, next) => {
  const start = performance.now();
  await next();
  const status = c.res.status;
  log(status >= 500 ? "error" : "info", "request", {
    request_id: c.get("requestId"),
    method: c.req.method,
    route: routeLabel(c),
    path: c.req.path,
    status,
    duration_ms: Math.round((performance.now() - start) * 100) / 100,
    user_id: userId(c.var as Record<string, unknown>),
  });
});

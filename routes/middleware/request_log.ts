/** One JSON log line per request: time, request id, method, route, status, duration. */
import { createMiddleware } from "hono/factory";
import { routePath } from "hono/route";
import { log } from "../../lib/log.ts";

/** Logs each request after it is answered. */
export const requestLog = createMiddleware(async (c, next) => {
  const start = performance.now();
  await next();
  log("info", "request", {
    request_id: c.get("requestId"),
    method: c.req.method,
    route: routePath(c, -1) || c.req.path,
    status: c.res.status,
    duration_ms: Math.round((performance.now() - start) * 100) / 100,
  });
});

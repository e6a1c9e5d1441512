/**
 * One JSON log line per request, with the fields log pipelines filter on:
 * level, msg, request_id, method, route (the pattern), path, status,
 * duration_ms, and user_id once the caller is known (token or session).
 */
import { createMiddleware } from "hono/factory";
import { log } from "../../lib/log.ts";
import { requestFields } from "./log_scope.ts";

/** Logs each request after it is answered. */
export const requestLog = createMiddleware(async (c, next) => {
  const start = performance.now();
  await next();
  const status = c.res.status;
  log(status >= 500 ? "error" : "info", "request", {
    ...requestFields(c),
    path: c.req.path,
    status,
    duration_ms: Math.round((performance.now() - start) * 100) / 100,
  });
});

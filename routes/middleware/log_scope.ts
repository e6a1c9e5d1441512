/**
 * Opens the request's log scope (lib/log.ts): every line written while the
 * request is answered, by any module, carries request_id, method, route (the
 * pattern) and user_id once a token or session said who called.
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { inRequestScope } from "../../lib/log.ts";
import { routeLabel } from "./metrics.ts";

/** Who made the request, when a token or a dashboard session said so. */
export function userId(c: Context): number | undefined {
  // c.get, not c.var: c.var builds a new object from all the request's variables on every read.
  const principal = c.get("principal") as { userId?: number } | undefined;
  const session = c.get("session") as { userId?: number } | undefined;
  return principal?.userId ?? session?.userId;
}

/** The route pattern; before the response exists, without creating one (reading `c.res` would). */
function route(c: Context): string {
  if (c.finalized) return routeLabel(c);
  return c.req.matchedRoutes.findLast((r) => r.method !== "ALL")?.path ?? "unmatched";
}

/** The request's fields as a log line wants them now. */
export function requestFields(c: Context): Record<string, unknown> {
  return { request_id: c.get("requestId"), method: c.req.method, route: route(c), user_id: userId(c) };
}

const started = new WeakMap<Request, number>();

/** Milliseconds since the request reached the log scope (2 decimals), for its error lines. */
export function elapsedMs(c: Context): number | undefined {
  const start = started.get(c.req.raw);
  return start === undefined ? undefined : Math.round((performance.now() - start) * 100) / 100;
}

/**
 * Registered right after the request id, so everything behind it logs in the scope. Reads (GET,
 * HEAD) get no async scope: under Deno.serve it costs ~18 µs a request, 15 % of the status
 * endpoint's throughput (bench:status), and their request and error lines take the same fields
 * from the context; only lines other modules write during a read go without them.
 */
export const logScope = createMiddleware((c, next) => {
  started.set(c.req.raw, performance.now());
  if (c.req.method === "GET" || c.req.method === "HEAD") return next();
  return inRequestScope(() => requestFields(c), next);
});

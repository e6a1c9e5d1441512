/**
 * What the port answers outside the app's working life: in the second or two
 * between binding it and the app being ready (demo data on a first start),
 * alive on /healthz and 503 elsewhere; and, at the end of a shutdown's grace
 * period, 503 to the requests still running then (instead of a dropped connection).
 */
import { NO_STORE } from "./middleware/no_store.ts";
import { problemBody } from "./problem.ts";

/** Seconds a client cut by a shutdown is asked to wait: a restart (systemd's RestartSec=2, then start-up) or another instance. */
export const SHUTDOWN_RETRY_AFTER_S = 5;

/** A 503 problem outside the app (no Hono context): `detail`, `Retry-After`, its own request id. */
function unavailable(request: Request, detail: string, retryAfterS: number): Response {
  const body = problemBody({ status: 503, detail }, new URL(request.url).pathname);
  return new Response(body, {
    status: 503,
    headers: {
      "Content-Type": "application/problem+json",
      "Retry-After": String(retryAfterS),
      "Cache-Control": NO_STORE,
      "X-Content-Type-Options": "nosniff",
      "X-Request-Id": crypto.randomUUID(),
    },
  });
}

/** A minimal handler for requests that arrive while start-up finishes. */
export function starting(request: Request): Response {
  const path = new URL(request.url).pathname;
  if (path === "/healthz") {
    return new Response(JSON.stringify({ status: "ok" }), {
      headers: { "Content-Type": "application/json" },
    });
  }
  return unavailable(request, "Levelguard is starting; retry shortly", 1);
}

/** The answer to a request still running when a shutdown's grace period ends. */
export function shuttingDown(request: Request): Response {
  return unavailable(
    request,
    "Levelguard is shutting down and this request was still running when its grace period ended; it may " +
      "or may not have taken effect: retry it (with the same Idempotency-Key) shortly",
    SHUTDOWN_RETRY_AFTER_S,
  );
}

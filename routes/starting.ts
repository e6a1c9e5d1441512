/**
 * What the port answers in the second or two between binding it and the app
 * being ready (demo data on a first start): alive on /healthz, 503 elsewhere.
 */
import { safeJson, TITLES } from "./problem.ts";

/** A minimal handler for requests that arrive while start-up finishes. */
export function starting(request: Request): Response {
  const path = new URL(request.url).pathname;
  if (path === "/healthz") {
    return new Response(JSON.stringify({ status: "ok" }), {
      headers: { "Content-Type": "application/json" },
    });
  }
  const body = {
    type: "https://levelguard.dev/problems/service-unavailable",
    title: TITLES[503],
    status: 503,
    detail: "Levelguard is starting; retry shortly",
    instance: path,
    errors: [],
  };
  return new Response(safeJson(body), {
    status: 503,
    headers: {
      "Content-Type": "application/problem+json",
      "Retry-After": "1",
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
    },
  });
}

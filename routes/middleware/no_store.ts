/**
 * `Cache-Control: no-store`, set in one place: every answer of the app that
 * does not choose its own policy (the API's tokens and figures, problems, the
 * dashboard's pages and parts, the probes, /metrics) is private and current,
 * and neither a shared cache nor a browser's history may keep it. Answers that
 * choose keep theirs: the static assets are `immutable` (routes/assets.ts), the
 * OpenAPI document `no-cache` (routes/openapi.ts), the dashboard's event stream
 * `no-cache` (Hono's streamSSE). Mount it first, so errors and 404s pass it too.
 */
import type { MiddlewareHandler } from "hono";

/** The header's value; the answers sent before the app exists (routes/starting.ts) use it too. */
export const NO_STORE = "no-store";

/** Sets `Cache-Control: no-store` on answers without a Cache-Control of their own. */
export function noStore(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    if (!c.res.headers.has("Cache-Control")) c.header("Cache-Control", NO_STORE);
  };
}

/** Maps every error to an RFC 9457 problem+json response, in one place. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { AppError, Invalid } from "../../lib/errors.ts";
import { errorFields, log } from "../../lib/log.ts";

const PROBLEM_BASE = "https://levelguard.dev/problems/";

function slug(title: string) {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
}

/**
 * JSON with `<`, `>`, `&` and the JS line separators as \u escapes: problems
 * echo client input (field names, paths), and escaped it stays inert even if
 * a client renders the body as HTML. JSON.parse gives the original back.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Renders an AppError as problem+json. */
export function problem(c: Context, err: AppError): Response {
  const requestId = c.get("requestId") as string | undefined;
  const body = {
    type: PROBLEM_BASE + slug(err.title),
    title: err.title,
    status: err.status,
    detail: err.message,
    instance: c.req.path,
    request_id: requestId,
    errors: err.errors,
  };
  return c.body(safeJson(body), err.status as ContentfulStatusCode, {
    ...err.headers,
    "Content-Type": "application/problem+json",
    "Cache-Control": "no-store",
  });
}

/** Hono's onError: domain errors keep their status; anything else is a 500 without internals. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof AppError) return problem(c, err);
  if (err instanceof HTTPException && err.status < 500) {
    const e = new AppError(err.status, err.status === 400 ? "Invalid request" : "Request error", err.message);
    return problem(c, e.status === 400 ? new Invalid(err.message) : e);
  }
  log("error", "unhandled error", {
    request_id: c.get("requestId"),
    method: c.req.method,
    path: c.req.path,
    ...errorFields(err),
  });
  return problem(
    c,
    new AppError(
      500,
      "Internal server error",
      "Something went wrong; quote the request id when reporting it",
    ),
  );
}

/** Hono's notFound: a problem, not a bare text page. */
export function onNotFound(c: Context): Response {
  return problem(c, new AppError(404, "Not found", `No route for ${c.req.method} ${c.req.path}`));
}

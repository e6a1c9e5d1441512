/**
 * Every error becomes an answer here, in one place: domain errors
 * (lib/errors.ts) and database outages get their status and headers from the
 * table below; HTTP-level refusals raised by middleware are `HttpProblem`s;
 * anything else is a 500 without internals, logged with its stack. The answer
 * is RFC 9457 problem+json, or, for the requests a `ProblemPage` claims (a
 * browser on the dashboard), a page made from the same status, title, detail
 * and headers.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  Conflict,
  type DomainError,
  type FieldError,
  Forbidden,
  Invalid,
  KeyConflict,
  NotFound,
  Throttled,
  Unauthenticated,
  Unavailable,
} from "../lib/errors.ts";
import { errorFields, log } from "../lib/log.ts";
import { unavailability } from "../lib/retry.ts";
import { elapsedMs, requestFields } from "./middleware/log_scope.ts";

const PROBLEM_BASE = "https://levelguard.dev/problems/";

/** The title of each status the API answers with. */
export const TITLES: Readonly<Record<number, string>> = {
  400: "Invalid request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  405: "Method not allowed",
  408: "Request timeout",
  409: "Conflict",
  413: "Payload too large",
  415: "Unsupported media type",
  422: "Unprocessable request",
  429: "Too many requests",
  500: "Internal server error",
  503: "Service unavailable",
};

/** Seconds a client is asked to wait when the database is down or busy. */
export const DATABASE_RETRY_AFTER_S = 5;

/** A problem as it goes on the wire (minus `type`, `title` and `instance`, derived here). */
export interface Problem {
  status: ContentfulStatusCode;
  detail: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
}

/** An HTTP-level refusal raised by middleware (413, 415, 429, 405): status, detail, headers. */
export class HttpProblem extends HTTPException {
  constructor(
    status: ContentfulStatusCode,
    detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(status, { message: detail });
  }
}

const WWW_AUTHENTICATE = { "WWW-Authenticate": 'Bearer realm="levelguard"' };

// Domain error → status and headers. A class not listed here is a bug: 500.
const DOMAIN: [abstract new (...args: never[]) => DomainError, (err: never) => Problem][] = [
  [Invalid, (e: Invalid) => ({ status: 400, detail: e.message, errors: e.errors })],
  [Unauthenticated, (e: Unauthenticated) => ({ status: 401, detail: e.message, headers: WWW_AUTHENTICATE })],
  [Forbidden, (e: Forbidden) => ({ status: 403, detail: e.message })],
  [NotFound, (e: NotFound) => ({ status: 404, detail: e.message })],
  [Conflict, (e: Conflict) => ({ status: 409, detail: e.message })],
  [KeyConflict, (e: KeyConflict) => ({ status: 422, detail: e.message })],
  [Throttled, (e: Throttled) => ({
    status: 429,
    detail: e.message,
    headers: { "Retry-After": String(e.retryAfterSeconds) },
  })],
  [Unavailable, (e: Unavailable) => ({
    status: 503,
    detail: e.message,
    headers: { "Retry-After": String(e.retryAfterSeconds) },
  })],
];

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

/** The title of a status. */
export function titleOf(status: number): string {
  return TITLES[status] ?? "Error";
}

/** The problem+json body of `p` for the request at `instance`. */
export function problemBody(p: Problem, instance: string, requestId?: string): string {
  const title = titleOf(p.status);
  return safeJson({
    type: PROBLEM_BASE + slug(title),
    title,
    status: p.status,
    detail: p.detail,
    instance,
    request_id: requestId,
    errors: p.errors ?? [],
  });
}

/**
 * A problem as something other than problem+json, for the requests it claims
 * (null: not this one), as Hono's `HTTPException.getResponse()` carries its own
 * response. It gets the problem itself, never the JSON to parse back.
 */
export type ProblemPage = (c: Context, problem: Problem) => Response | Promise<Response> | null;

function problemJson(c: Context, p: Problem): Response {
  return c.body(problemBody(p, c.req.path, c.get("requestId") as string | undefined), p.status, {
    ...p.headers,
    "Content-Type": "application/problem+json",
  });
}

/** The problem for an error, or null when it is unexpected (a 500). */
export function problemFor(err: unknown): Problem | null {
  for (const [type, map] of DOMAIN) {
    if (err instanceof type) return map(err as never);
  }
  if (err instanceof HttpProblem) {
    return { status: err.status as ContentfulStatusCode, detail: err.message, headers: err.headers };
  }
  if (err instanceof HTTPException && err.status < 500) {
    return { status: err.status as ContentfulStatusCode, detail: err.message || TITLES[err.status] };
  }
  const outage = unavailability(err);
  if (outage) {
    return {
      status: 503,
      detail: outage === "down"
        ? "The database is unavailable; retry shortly"
        : "The database is busy; retry shortly",
      headers: { "Retry-After": String(DATABASE_RETRY_AFTER_S) },
    };
  }
  return null;
}

/** The request fields of an error line, as the request line has them (also outside the log scope). */
function errorContext(c: Context, status: number): Record<string, unknown> {
  return { ...requestFields(c), path: c.req.path, status, duration_ms: elapsedMs(c) };
}

function patternOf(path: string): RegExp {
  const source = path.split("/").map((part) =>
    part === "*" ? ".*" : part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  ).join("/");
  return new RegExp(`^${source}/?$`);
}

/**
 * The app's error answers: `onError`, `onNotFound` and the route-aware
 * `notFoundOrMethodNotAllowed`; `page` renders the problems of the requests it
 * claims, problem+json answers the rest.
 */
export function problemAnswers({ page }: { page?: ProblemPage } = {}) {
  const answer = (c: Context, p: Problem) => page?.(c, p) ?? problemJson(c, p);

  /** Hono's onError: mapped errors keep their status; anything else is a 500 without internals. */
  function onError(err: Error, c: Context): Response | Promise<Response> {
    const mapped = problemFor(err);
    if (mapped) {
      if (mapped.status === 503) {
        log("warn", "request refused: unavailable", { ...errorContext(c, 503), error: err.message });
      }
      return answer(c, mapped);
    }
    log("error", "unhandled error", { ...errorContext(c, 500), ...errorFields(err) });
    return answer(c, { status: 500, detail: "Something went wrong; quote the request id when reporting it" });
  }

  /** Hono's notFound: a problem, not a bare text page. */
  function onNotFound(c: Context): Response | Promise<Response> {
    return answer(c, { status: 404, detail: `No route for ${c.req.method} ${c.req.path}` });
  }

  /**
   * notFound that knows the routes: a path served for other methods is 405 with
   * `Allow` (HEAD wherever GET is); any other path is 404. `routes` is read on
   * the first miss, once every router is mounted.
   */
  function notFoundOrMethodNotAllowed(routes: () => readonly { method: string; path: string }[]) {
    let table: { pattern: RegExp; method: string }[] | undefined;
    return (c: Context): Response | Promise<Response> => {
      table ??= routes().filter((r) => r.method !== "ALL").map((r) => ({
        pattern: patternOf(r.path),
        method: r.method.toUpperCase(),
      }));
      const allowed = new Set(table.filter((r) => r.pattern.test(c.req.path)).map((r) => r.method));
      if (allowed.size === 0) return onNotFound(c);
      if (allowed.has("GET")) allowed.add("HEAD");
      const allow = [...allowed].sort().join(", ");
      return answer(c, {
        status: 405,
        detail: `${c.req.method} is not served at ${c.req.path}; use ${allow}`,
        headers: { Allow: allow },
      });
    };
  }

  return { onError, onNotFound, notFoundOrMethodNotAllowed };
}

/** The answers as problem+json only (bare apps: middleware and their tests). */
export const { onError, onNotFound, notFoundOrMethodNotAllowed } = problemAnswers();

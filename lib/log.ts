/**
 * Structured logging: one JSON object per line on stdout (errors on stderr).
 * Lines written while a request that changes something is answered carry its
 * fields (request_id, method, route, user_id once known) whatever module
 * writes them: routes/middleware/log_scope.ts opens a scope (`inRequestScope`)
 * that `log` reads.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { redactUrls } from "./postgres_url.ts";

type Level = "debug" | "info" | "warn" | "error";

let quiet = false;

/** Read when a line is written, so fields learnt later in the request (the user) are there. */
type ScopeFields = () => Record<string, unknown>;

const requestScope = new AsyncLocalStorage<{ fields: ScopeFields }>();

/** Silences info/debug lines (tests turn this on to keep output readable). */
export function setQuiet(value: boolean) {
  quiet = value;
}

/** Runs `fn` with every line it logs (also from awaited work) carrying `fields()`. */
export function inRequestScope<T>(fields: ScopeFields, fn: () => T): T {
  return requestScope.run({ fields }, fn);
}

/** Runs `fn` outside any request's scope: work done for several requests at once (a batch) names none. */
export function outsideRequestScope<T>(fn: () => T): T {
  return requestScope.exit(fn);
}

/** Writes one JSON log line; its own fields win over the request's. */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}) {
  if (quiet && (level === "info" || level === "debug")) return;
  const scoped = requestScope.getStore()?.fields();
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...scoped, ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

/** Serialises an unknown error for a log line (with its stack; a connection string loses its password). */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    return {
      error: redactUrls(err.message),
      error_name: err.name,
      stack: err.stack && redactUrls(err.stack),
    };
  }
  return { error: redactUrls(String(err)) };
}

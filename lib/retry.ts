/**
 * What a database error means for the caller: whether running the statement
 * again is safe, and whether the database is unavailable (rather than the
 * request wrong). Every SQLSTATE class a client can meet when the server is
 * down, starting, stopping or overloaded is classified here, deliberately.
 */

// PostgreSQL rolled the transaction back: running it again cannot apply it twice.
const ROLLED_BACK = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
]);
// Refused before anything ran: nothing can have been applied.
const NOT_SENT = new Set([
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P03", // cannot_connect_now: the server is starting up or shutting down
  "53300", // too_many_connections
  "08001", // sqlclient_unable_to_establish_sqlconnection
  "08004", // sqlserver_rejected_establishment_of_sqlconnection
]);
// The connection ended while a statement may have been running or committing:
// the outcome is unknown (a FATAL after the commit reaches the client as an error).
const OUTCOME_UNKNOWN = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
  "57P01", // admin_shutdown: fast shutdown or pg_terminate_backend
  "57P02", // crash_shutdown: another backend crashed, every session is ended
  "08000", // connection_exception
  "08003", // connection_does_not_exist
  "08006", // connection_failure
  "08007", // transaction_resolution_unknown
]);
// Reported on an idle session, or the database itself is gone: no statement of ours was running.
const UNAVAILABLE_ONLY = new Set([
  "57P04", // database_dropped
  "57P05", // idle_session_timeout
  "3D000", // invalid_catalog_name: the database does not exist (yet)
  "28P01", // invalid_password: the server refuses our credentials
  "28000", // invalid_authorization_specification
]);

/** How an error may be retried. */
export type Transience = "safe" | "unknown-outcome" | "permanent";

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Classifies a postgres.js error for retrying. */
export function transience(err: unknown): Transience {
  const code = codeOf(err);
  if (!code) return "permanent";
  if (ROLLED_BACK.has(code) || NOT_SENT.has(code)) return "safe";
  if (OUTCOME_UNKNOWN.has(code)) return "unknown-outcome";
  return "permanent";
}

/**
 * Why the database cannot serve a request now, or null when the error is
 * something else: `down` (unreachable, starting, stopping, refusing us),
 * `busy` (out of connections, a statement timed out, conflicts kept failing).
 */
export function unavailability(err: unknown): "down" | "busy" | null {
  const code = codeOf(err);
  if (!code) return null;
  if (code === "53300" || code === "57014" || ROLLED_BACK.has(code)) return "busy";
  if (NOT_SENT.has(code) || OUTCOME_UNKNOWN.has(code) || UNAVAILABLE_ONLY.has(code)) return "down";
  return null;
}

/** Retry policy. */
export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  /** Whether an unknown-outcome failure may be retried (true when a replay cannot apply twice). */
  idempotent: boolean;
  onRetry?: (attempt: number, err: unknown) => void;
}

/**
 * Runs `fn`, retrying transient failures up to `attempts` times with full
 * jitter. A connect that timed out is not retried: it already waited the
 * whole connect timeout, and callers are promised an answer within it.
 */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const kind = transience(err);
      const timedOut = codeOf(err) === "CONNECT_TIMEOUT";
      const retryable = (kind === "safe" && !timedOut) || (kind === "unknown-outcome" && options.idempotent);
      if (!retryable || attempt >= options.attempts) throw err;
      options.onRetry?.(attempt, err);
      const cap = options.baseDelayMs * 2 ** (attempt - 1);
      await new Promise((r) => setTimeout(r, Math.random() * cap));
    }
  }
}

/** Bounded retries with jittered exponential backoff for transient database errors. */

// SQLSTATEs after which PostgreSQL has rolled the transaction back, so running it again is safe.
const ROLLED_BACK = new Set(["40001", "40P01"]);
// Client-side errors where the statement may or may not have committed.
const CONNECTION_LOST = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
]);
// Failures before anything was sent: nothing can have been applied.
const NOT_SENT = new Set(["CONNECT_TIMEOUT", "ECONNREFUSED"]);

/** How an error may be retried. */
export type Transience = "safe" | "unknown-outcome" | "permanent";

/** Classifies a postgres.js error. */
export function transience(err: unknown): Transience {
  const code = (err as { code?: string } | null)?.code;
  if (!code) return "permanent";
  if (ROLLED_BACK.has(code) || NOT_SENT.has(code) || code.startsWith("08")) return "safe";
  if (CONNECTION_LOST.has(code) || code === "57P01") return "unknown-outcome";
  return "permanent";
}

/** Retry policy. */
export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  /** Whether an unknown-outcome failure may be retried (true when a replay cannot apply twice). */
  idempotent: boolean;
  onRetry?: (attempt: number, err: unknown) => void;
}

/** Runs `fn`, retrying transient failures up to `attempts` times with full jitter. */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const kind = transience(err);
      const retryable = kind === "safe" || (kind === "unknown-outcome" && options.idempotent);
      if (!retryable || attempt >= options.attempts) throw err;
      options.onRetry?.(attempt, err);
      const cap = options.baseDelayMs * 2 ** (attempt - 1);
      await new Promise((r) => setTimeout(r, Math.random() * cap));
    }
  }
}

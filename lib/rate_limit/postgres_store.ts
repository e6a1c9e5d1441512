/** A rate-limit store in PostgreSQL, so several instances share one budget per client. */
import type { Sql } from "../db.ts";
import { log } from "../log.ts";

/** Hits of one client in its current window (the shape hono-rate-limiter's `Store` uses). */
export interface ClientHits {
  totalHits: number;
  resetTime?: Date;
}

/**
 * Fixed-window counters in the `rate_limit_hits` table (migration 0002).
 * One atomic upsert per request; the database's clock decides the windows,
 * so instances with skewed clocks still agree. If the database fails, the
 * request is let through (logged): limiting must not take the API down.
 */
export class PostgresRateLimitStore {
  /** Keys are per store, so two limiters on one table do not collide. */
  readonly prefix: string;
  /** Counts are shared between instances (tells hono-rate-limiter not to warn). */
  readonly localKeys = false;
  #windowMs: number;
  #lastSweep = Date.now();
  #lastFailureLog = 0;

  readonly #onFailure: () => void;

  constructor(
    private readonly sql: Sql,
    options: { windowMs: number; prefix?: string; onFailure?: () => void },
  ) {
    this.#windowMs = options.windowMs;
    this.prefix = options.prefix ?? "ip:";
    this.#onFailure = options.onFailure ?? (() => {});
  }

  /** Called by hono-rate-limiter with its options. */
  init(options: { windowMs: number }): void {
    this.#windowMs = options.windowMs;
  }

  /** Counts one hit and returns the window's total. */
  async increment(key: string): Promise<ClientHits> {
    try {
      const seconds = this.#windowMs / 1000;
      const [row] = await this.sql<{ hits: number; reset_in_ms: number }[]>`
        INSERT INTO rate_limit_hits AS r (key, hits, reset_at)
        VALUES (${this.prefix + key}, 1, now() + make_interval(secs => ${seconds}))
        ON CONFLICT (key) DO UPDATE SET
          hits = CASE WHEN r.reset_at <= now() THEN 1 ELSE least(r.hits + 1, 2147483647) END,
          reset_at = CASE WHEN r.reset_at <= now() THEN excluded.reset_at ELSE r.reset_at END
        RETURNING hits, (extract(epoch FROM reset_at - now()) * 1000)::float8 AS reset_in_ms`;
      await this.#sweep();
      return { totalHits: row.hits, resetTime: new Date(Date.now() + row.reset_in_ms) };
    } catch (err) {
      this.#failed(err);
      return { totalHits: 0, resetTime: new Date(Date.now() + this.#windowMs) };
    }
  }

  /** Returns a client's hits in its current window, if any. */
  async get(key: string): Promise<ClientHits | undefined> {
    const [row] = await this.sql<{ hits: number; reset_in_ms: number }[]>`
      SELECT hits, (extract(epoch FROM reset_at - now()) * 1000)::float8 AS reset_in_ms
      FROM rate_limit_hits WHERE key = ${this.prefix + key} AND reset_at > now()`;
    return row ? { totalHits: row.hits, resetTime: new Date(Date.now() + row.reset_in_ms) } : undefined;
  }

  /** Takes one hit back (never below zero, never into the next window). */
  async decrement(key: string): Promise<void> {
    await this.sql`
      UPDATE rate_limit_hits SET hits = greatest(hits - 1, 0)
      WHERE key = ${this.prefix + key} AND reset_at > now()`;
  }

  /** Forgets a client. */
  async resetKey(key: string): Promise<void> {
    await this.sql`DELETE FROM rate_limit_hits WHERE key = ${this.prefix + key}`;
  }

  // Expired rows are deleted about once a window per instance, inline and cheap (indexed).
  async #sweep() {
    if (Date.now() - this.#lastSweep < this.#windowMs) return;
    this.#lastSweep = Date.now();
    await this.sql`DELETE FROM rate_limit_hits WHERE reset_at < now() - interval '1 minute'`;
  }

  #failed(err: unknown) {
    this.#onFailure();
    if (Date.now() - this.#lastFailureLog < this.#windowMs) return;
    this.#lastFailureLog = Date.now();
    log("warn", "rate limit store unavailable; requests are not limited", {
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

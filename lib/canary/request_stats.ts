/**
 * Request figures every instance shares: each process counts its answered
 * requests per minute and cohort (`canary`: admins in the rollout; `other`)
 * with a latency histogram, and adds them to its own `request_stats` rows
 * every few seconds. The canary reads error rate and p95 from there, so its
 * verdict is the same whichever instance computes it.
 */
import type { Queryable, Sql } from "../db.ts";
import { errorFields, log } from "../log.ts";
import { transaction } from "../connection.ts";

/** Upper bounds (ms) of the latency buckets; one more bucket holds everything slower. */
export const LATENCY_BOUNDS_MS = [5, 10, 25, 50, 100, 200, 500, 1000, 2500, 5000] as const;

/** Whose request it was. */
export type Cohort = "canary" | "other";

interface Pending {
  minute: number;
  cohort: Cohort;
  requests: number;
  errors: number;
  buckets: number[];
}

// A database away for long must not grow memory: older minutes are dropped past this.
const MAX_PENDING_MINUTES = 120;

/** This process's counts not yet written. */
export class RequestStats {
  #pending = new Map<string, Pending>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #flushing: Promise<void> | null = null;

  constructor(private readonly sql: Sql, private readonly instance: string) {}

  /** Counts one answered request; `error`: it failed on the server's side (the edge decides what that is). */
  record(cohort: Cohort, error: boolean, durationMs: number, at = Date.now()): void {
    const minute = at - at % 60_000;
    const key = `${minute}:${cohort}`;
    let row = this.#pending.get(key);
    if (!row) {
      row = { minute, cohort, requests: 0, errors: 0, buckets: Array(LATENCY_BOUNDS_MS.length + 1).fill(0) };
      this.#pending.set(key, row);
      if (this.#pending.size > MAX_PENDING_MINUTES * 2) {
        this.#pending.delete(this.#pending.keys().next().value!);
      }
    }
    row.requests++;
    if (error) row.errors++;
    const slot = LATENCY_BOUNDS_MS.findIndex((bound) => durationMs <= bound);
    row.buckets[slot === -1 ? LATENCY_BOUNDS_MS.length : slot]++;
  }

  /** Writes the pending counts (added to this instance's rows); kept for the next try on failure. */
  flush(): Promise<void> {
    return this.#flushing ??= this.#write().finally(() => this.#flushing = null);
  }

  async #write(): Promise<void> {
    const rows = [...this.#pending.values()];
    if (rows.length === 0) return;
    this.#pending.clear();
    try {
      await transaction(this.sql, async (tx) => {
        for (const row of rows) {
          await tx`
            INSERT INTO request_stats (minute, instance, cohort, requests, errors, latency_buckets)
            VALUES (${new Date(row.minute)}, ${this.instance}, ${row.cohort}, ${row.requests}, ${row.errors},
              ${row.buckets}::bigint[])
            ON CONFLICT (minute, cohort, instance) DO UPDATE SET
              requests = request_stats.requests + EXCLUDED.requests,
              errors = request_stats.errors + EXCLUDED.errors,
              latency_buckets = ARRAY(
                SELECT a + b FROM unnest(request_stats.latency_buckets, EXCLUDED.latency_buckets)
                  WITH ORDINALITY AS t (a, b, i) ORDER BY i)`;
        }
      });
    } catch (err) {
      // Put them back (merged with what came in meanwhile) for the next flush.
      for (const row of rows) {
        const key = `${row.minute}:${row.cohort}`;
        const now = this.#pending.get(key);
        if (!now) this.#pending.set(key, row);
        else {
          now.requests += row.requests;
          now.errors += row.errors;
          row.buckets.forEach((n, i) => now.buckets[i] += n);
        }
      }
      throw err;
    }
  }

  /** Flushes every `everyMs` in the background (failures counted, and logged once per outage). */
  start(everyMs = 5000, onFailure: () => void = () => {}): void {
    let failing = false;
    this.#timer = setInterval(() => {
      this.flush().then(() => failing = false, (err) => {
        onFailure();
        if (!failing) log("warn", "request figures not written; kept for the next try", errorFields(err));
        failing = true;
      });
    }, everyMs);
    Deno.unrefTimer(this.#timer);
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush().catch(() => {});
  }
}

/** A cohort's figures over a window, all instances together. */
export interface WindowFigures {
  requests: number;
  errors: number;
  /** The 95th percentile latency (ms), interpolated within its bucket; null without requests. */
  p95Ms: number | null;
}

/** Sums the cohort's rows since `since` (whole minutes). */
export async function windowFigures(q: Queryable, cohort: Cohort, since: Date): Promise<WindowFigures> {
  const rows = await q<{ requests: number; errors: number; latency_buckets: number[] }[]>`
    SELECT requests, errors, latency_buckets FROM request_stats
    WHERE cohort = ${cohort} AND minute >= date_trunc('minute', ${since}::timestamptz)`;
  const buckets = Array(LATENCY_BOUNDS_MS.length + 1).fill(0);
  let requests = 0;
  let errors = 0;
  for (const row of rows) {
    requests += Number(row.requests);
    errors += Number(row.errors);
    row.latency_buckets.forEach((n, i) => buckets[i] += Number(n));
  }
  return { requests, errors, p95Ms: quantileMs(buckets, 0.95) };
}

/**
 * The q-quantile of a bucketed histogram, interpolated linearly within the
 * bucket it falls in (as Prometheus' histogram_quantile); the overflow bucket
 * reports its lower bound.
 */
export function quantileMs(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    if (seen + buckets[i] >= rank && buckets[i] > 0) {
      if (i === LATENCY_BOUNDS_MS.length) return LATENCY_BOUNDS_MS[i - 1];
      const lower = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1];
      return lower + (LATENCY_BOUNDS_MS[i] - lower) * ((rank - seen) / buckets[i]);
    }
    seen += buckets[i];
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1];
}

/** Deletes figures older than `days`; returns how many rows. */
export async function pruneRequestStats(q: Queryable, days: number): Promise<number> {
  const result = await q`DELETE FROM request_stats WHERE minute < now() - make_interval(days => ${days})`;
  return result.count;
}

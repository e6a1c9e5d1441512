/**
 * The hourly housekeeping: idempotency keys past their promise, expired
 * dashboard sessions, request figures older than the longest canary window,
 * sign-in failure records whose streak has ended.
 * One instance does it per tick: the others find the lock taken and skip.
 */
import { pruneRequestStats } from "./canary/request_stats.ts";
import { pruneIdempotencyKeys } from "./coupling.ts";
import type { Sql } from "./db.ts";
import { pruneLoginFailures } from "./login_throttle.ts";
import { pruneSessions } from "./sessions.ts";
import { transaction } from "./connection.ts";

/** Advisory lock key of the housekeeping (fixed, arbitrary; transaction-scoped, so a pooler is fine). */
export const PRUNE_LOCK_KEY = 7_245_006;

/** Request figures are kept this long (the canary looks back 24 h at most). */
export const REQUEST_STATS_DAYS = 7;

/** What one housekeeping run deleted, or null when another instance was doing it. */
export interface Pruned {
  idempotency_keys: number;
  sessions: number;
  request_stats: number;
  login_failures: number;
}

/** Deletes what has expired, in one transaction under the housekeeping lock. */
export async function pruneExpired(sql: Sql): Promise<Pruned | null> {
  return await transaction(sql, async (tx) => {
    const [{ locked }] = await tx<
      { locked: boolean }[]
    >`SELECT pg_try_advisory_xact_lock(${PRUNE_LOCK_KEY}) AS locked`;
    if (!locked) return null;
    return {
      idempotency_keys: await pruneIdempotencyKeys(tx),
      sessions: await pruneSessions(tx),
      request_stats: await pruneRequestStats(tx, REQUEST_STATS_DAYS),
      login_failures: await pruneLoginFailures(tx),
    };
  });
}

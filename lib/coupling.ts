/** The coupling enforcer: applies an XP change to progress and license together, exactly once. */
import type { Queryable, Sql } from "./db.ts";
import { KeyConflict, NotFound, Unauthenticated, Unavailable } from "./errors.ts";
import { log } from "./log.ts";
import { transience, withRetry } from "./retry.ts";

/** One XP award. */
export interface XpChange {
  studentId: number;
  specializationId: string;
  xpChange: number;
  actorId: number;
  requestId: string;
  idempotencyKey?: string;
  /** After this moment the change must not be applied any more (the caller was answered). */
  deadline?: Date;
}

/** An applied change: the new state as JSON text (built by PostgreSQL), and whether it is a replay. */
export interface AppliedChange {
  body: string;
  replayed: boolean;
}

/** Attempts per change: the first plus up to three retries of transient failures. */
export const MAX_ATTEMPTS = 4;

/** What `apply_xp` (migrations/0011, named outcomes since 0005) answers; anything else throws. */
type Outcome = "applied" | "replayed" | "unknown_student" | "key_conflict" | "actor_inactive" | "expired";

/**
 * Applies the change in one round trip (`apply_xp`): locks progress then
 * license, writes both and the ledger row, or nothing. The body comes back as
 * JSON text in the documented key order, so it is sent as is.
 */
export async function applyXpChange(sql: Sql, change: XpChange): Promise<AppliedChange> {
  const key = change.idempotencyKey ?? null;
  let row: { outcome: Outcome; body: string | null };
  try {
    [row] = await withRetry(
      () =>
        sql<{ outcome: Outcome; body: string | null }[]>`
          SELECT outcome, body
          FROM apply_xp(${change.studentId}, ${change.specializationId}, ${change.xpChange},
                        ${change.actorId}, ${change.requestId}, ${key}, ${change.deadline ?? null})`,
      {
        attempts: MAX_ATTEMPTS,
        baseDelayMs: 10,
        // With a key, a retry after a lost connection replays instead of applying twice.
        idempotent: key !== null,
        onRetry: (attempt, err) =>
          log("warn", "retrying XP change", {
            request_id: change.requestId,
            attempt,
            code: (err as { code?: string }).code,
          }),
      },
    );
  } catch (err) {
    if (transience(err) === "unknown-outcome") {
      throw new Unavailable(
        "The database connection was lost; the change may or may not have been applied. Send an Idempotency-Key to retry safely.",
        5,
        err,
      );
    }
    throw err;
  }
  switch (row.outcome) {
    case "applied":
      return { body: row.body!, replayed: false };
    case "replayed":
      return { body: row.body!, replayed: true };
    case "unknown_student":
      throw new NotFound(`Student ${change.studentId} does not exist`);
    case "key_conflict":
      throw new KeyConflict("This Idempotency-Key was already used with a different request body");
    case "actor_inactive":
      throw new Unauthenticated("The token's user no longer exists or is inactive");
    case "expired":
      throw new Unavailable("The database answered too late; the change was not applied. Retry shortly");
    default:
      throw new Error(`apply_xp answered an unknown outcome: ${JSON.stringify(row.outcome)}`);
  }
}

/** Deletes idempotency keys older than `hours` (default 48 h, so keys live at least 24 h). */
export async function pruneIdempotencyKeys(sql: Queryable, hours = 48): Promise<number> {
  const result =
    await sql`DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${hours})`;
  return result.count;
}

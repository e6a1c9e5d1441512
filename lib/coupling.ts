/** The coupling enforcer: applies an XP change to progress and license together, exactly once. */
import type { Sql } from "./db.ts";
import { NotFound, Unauthorized, Unavailable, Unprocessable } from "./errors.ts";
import { log } from "./log.ts";
import { transience, withRetry } from "./retry.ts";

/** The state after an applied change; also the JSON body of a 200 response. */
export interface ProgressUpdateResult {
  student_id: number;
  specialization_id: string;
  xp_change: number;
  /** What was added after saturation at 2^53-1 (equal to xp_change unless the total is capped). */
  xp_applied: number;
  previous_level: number;
  leveled_up: boolean;
  /** Id of the ledger row (xp_events) recording this change. */
  event_id: number;
  progress: { current_level: number; total_xp: number; updated_at: string };
  license: { current_level: number; max_achieved_level: number; updated_at: string };
}

/** One XP award. */
export interface XpChange {
  studentId: number;
  specializationId: string;
  xpChange: number;
  actorId: number;
  requestId: string;
  idempotencyKey?: string;
}

/** The outcome: the 200 body (a `ProgressUpdateResult` as JSON text, built by PostgreSQL) and whether it was replayed. */
export interface AppliedChange {
  body: string;
  replayed: boolean;
}

const MAX_ATTEMPTS = 4;

/**
 * Applies the change in one round trip (`apply_xp`, migrations/0003): locks
 * progress then license, writes both and the ledger row, or nothing. The
 * body comes back as JSON text in the documented key order, so the route
 * sends it as is instead of decoding and re-encoding it.
 */
export async function applyXpChange(sql: Sql, change: XpChange): Promise<AppliedChange> {
  const key = change.idempotencyKey ?? null;
  let row: { status: number; body: string | null; replayed: boolean };
  try {
    [row] = await withRetry(
      () =>
        sql<{ status: number; body: string | null; replayed: boolean }[]>`
          SELECT status, body, replayed
          FROM apply_xp(${change.studentId}, ${change.specializationId}, ${change.xpChange},
                        ${change.actorId}, ${change.requestId}, ${key})`,
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
      );
    }
    if (transience(err) === "safe") throw new Unavailable("The database is busy; retry shortly");
    throw err;
  }
  switch (row.status) {
    case 200:
      return { body: row.body!, replayed: row.replayed };
    case 401:
      throw new Unauthorized("The token's user no longer exists or is inactive");
    case 422:
      throw new Unprocessable("This Idempotency-Key was already used with a different request body");
    default:
      // 404, also when replayed under its key.
      throw notFound(change.studentId);
  }
}

function notFound(studentId: number) {
  return new NotFound(`Student ${studentId} does not exist`);
}

/** Deletes idempotency keys older than `hours` (default 48 h, so keys live at least 24 h). */
export async function pruneIdempotencyKeys(sql: Sql, hours = 48): Promise<number> {
  const result =
    await sql`DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${hours})`;
  return result.count;
}

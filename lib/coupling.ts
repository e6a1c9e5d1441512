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

/** The outcome: a result, and whether it was replayed from an earlier request with the same key. */
export interface AppliedChange {
  result: ProgressUpdateResult;
  replayed: boolean;
}

type Outcome =
  | {
    outcome: "applied" | "replay";
    status: number;
    response: ProgressUpdateResult | { outcome: "not_found" };
  }
  | { outcome: "not_found" | "key_reused" | "actor_inactive" };

const MAX_ATTEMPTS = 4;

/**
 * Applies the change in one round trip (`apply_xp`, migrations/0003): locks
 * progress then license, writes both and the ledger row, or nothing.
 */
export async function applyXpChange(sql: Sql, change: XpChange): Promise<AppliedChange> {
  const key = change.idempotencyKey ?? null;
  let outcome: Outcome;
  try {
    outcome = await withRetry(
      async () => {
        const [row] = await sql<{ r: Outcome }[]>`
          SELECT apply_xp(${change.studentId}, ${change.specializationId}, ${change.xpChange},
                          ${change.actorId}, ${change.requestId}, ${key}) AS r`;
        return row.r;
      },
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
  switch (outcome.outcome) {
    case "actor_inactive":
      throw new Unauthorized("The token's user no longer exists or is inactive");
    case "key_reused":
      throw new Unprocessable("This Idempotency-Key was already used with a different request body");
    case "not_found":
      throw notFound(change.studentId);
    default:
      // A replayed 404 keeps its status.
      if ("outcome" in outcome.response) throw notFound(change.studentId);
      return { result: ordered(outcome.response), replayed: outcome.outcome === "replay" };
  }
}

// jsonb sorts keys by length; clients read the documented order more easily.
function ordered(r: ProgressUpdateResult): ProgressUpdateResult {
  return {
    student_id: r.student_id,
    specialization_id: r.specialization_id,
    xp_change: r.xp_change,
    xp_applied: r.xp_applied,
    previous_level: r.previous_level,
    leveled_up: r.leveled_up,
    event_id: r.event_id,
    progress: {
      current_level: r.progress.current_level,
      total_xp: r.progress.total_xp,
      updated_at: r.progress.updated_at,
    },
    license: {
      current_level: r.license.current_level,
      max_achieved_level: r.license.max_achieved_level,
      updated_at: r.license.updated_at,
    },
  };
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

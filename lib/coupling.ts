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

/**
 * What `apply_xp` (migrations/0011, named outcomes since 0005) and `apply_xp_batch` (0014) answer;
 * anything else throws.
 */
type Outcome = "applied" | "replayed" | "unknown_student" | "key_conflict" | "actor_inactive" | "expired";

/** What the database answered for one change. */
interface Answer {
  outcome: Outcome;
  body: string | null;
}

const LOST_CONNECTION =
  "The database connection was lost; the change may or may not have been applied. Send an Idempotency-Key to retry safely.";

/**
 * Applies the change in one round trip (`apply_xp`): locks progress then
 * license, writes both and the ledger row, or nothing. The body comes back as
 * JSON text in the documented key order, so it is sent as is.
 */
export async function applyXpChange(sql: Sql, change: XpChange): Promise<AppliedChange> {
  const key = change.idempotencyKey ?? null;
  let row: Answer;
  try {
    [row] = await withRetry(
      () =>
        sql<Answer[]>`
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
    if (transience(err) === "unknown-outcome") throw new Unavailable(LOST_CONNECTION, 5, err);
    throw err;
  }
  return settle(change, row);
}

/** One change's end in a batch: its result, or the error its request answers with. */
export type Settled = { ok: true; value: AppliedChange } | { ok: false; error: unknown };

/**
 * Applies several changes in one transaction and one round trip
 * (`apply_xp_batch`, migrations/0014), each answered as `applyXpChange` would
 * answer it alone. When the call fails (an item raised, a conflict, the
 * connection), nothing of it was written, and each change is applied on its
 * own with `applyXpChange`, so a failure stays with its change and the retry
 * rules hold per change. The exception is a connection lost during the call:
 * the batch may have committed, so a change with an Idempotency-Key is sent
 * again (it replays if it was applied) and one without is told its outcome is
 * unknown, as a single change is.
 */
export async function applyXpChanges(sql: Sql, changes: XpChange[]): Promise<Settled[]> {
  const items = JSON.stringify(changes.map((c) => ({
    student_id: c.studentId,
    specialization_id: c.specializationId,
    xp_change: c.xpChange,
    actor_id: c.actorId,
    request_id: c.requestId,
    key: c.idempotencyKey ?? null,
    deadline: c.deadline?.toISOString() ?? null,
  })));
  let rows: (Answer & { i: number })[];
  try {
    // Sent as text: a json parameter would be serialized by the client again (a JSON string).
    rows = await sql<(Answer & { i: number })[]>`
      SELECT i, outcome, body FROM apply_xp_batch(${items}::text::json)`;
  } catch (err) {
    const unknown = transience(err) === "unknown-outcome";
    log("warn", "XP batch failed; applying its changes one by one", {
      changes: changes.length,
      code: (err as { code?: string }).code,
      error: err instanceof Error ? err.message : String(err),
    });
    return await Promise.all(
      changes.map((change) =>
        unknown && change.idempotencyKey === undefined
          ? { ok: false as const, error: new Unavailable(LOST_CONNECTION, 5, err) }
          : settled(() => applyXpChange(sql, change))
      ),
    );
  }
  const answers: Settled[] = changes.map(() => ({
    ok: false,
    error: new Error(`apply_xp_batch answered ${rows.length} rows for ${changes.length} changes`),
  }));
  for (const row of rows) answers[row.i] = settled(() => settle(changes[row.i], row));
  return answers;
}

/** `fn`'s result or error as a value (a batch answers every change, failed or not). */
function settled(fn: () => AppliedChange): Settled;
function settled(fn: () => Promise<AppliedChange>): Promise<Settled>;
function settled(fn: () => AppliedChange | Promise<AppliedChange>): Settled | Promise<Settled> {
  try {
    const value = fn();
    if (value instanceof Promise) {
      return value.then((v) => ({ ok: true, value: v }), (error) => ({ ok: false, error }));
    }
    return { ok: true, value };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The change's result for what the database answered, or the named error its request answers with. */
function settle(change: XpChange, { outcome, body }: Answer): AppliedChange {
  switch (outcome) {
    case "applied":
      return { body: body!, replayed: false };
    case "replayed":
      return { body: body!, replayed: true };
    case "unknown_student":
      throw new NotFound(`Student ${change.studentId} does not exist`);
    case "key_conflict":
      throw new KeyConflict("This Idempotency-Key was already used with a different request body");
    case "actor_inactive":
      throw new Unauthenticated("The token's user no longer exists or is inactive");
    case "expired":
      throw new Unavailable("The database answered too late; the change was not applied. Retry shortly");
    default:
      throw new Error(`apply_xp answered an unknown outcome: ${JSON.stringify(outcome)}`);
  }
}

/** Deletes idempotency keys older than `hours` (default 48 h, so keys live at least 24 h). */
export async function pruneIdempotencyKeys(sql: Queryable, hours = 48): Promise<number> {
  const result =
    await sql`DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${hours})`;
  return result.count;
}

/**
 * The dashboard's rollout percentage (app_settings 'dashboard_rollout_percent')
 * and its changes, each one an audit_log row ('rollout.set') with who, from,
 * to and why. Changes are compare-and-set on the stored value, so two
 * instances deciding the same change (an automatic rollback) make it once.
 */
import { z } from "zod";
import type { Queryable, Sql } from "../db.ts";
import { Unauthenticated } from "../errors.ts";
import { transaction } from "../connection.ts";

const KEY = "dashboard_rollout_percent";

/** Where a change came from. */
export type RolloutSource = "api" | "dashboard" | "cli" | "auto-rollback";

/** The last change of the rollout (null before any). */
export const rolloutChangeSchema = z.strictObject({
  from: z.int(),
  to: z.int(),
  reason: z.string().nullable(),
  source: z.enum(["api", "dashboard", "cli", "auto-rollback"]),
  /** The admin who made it (null from the command line or the automatic rollback). */
  actor_id: z.int().nullable(),
  /** Who, in words: an admin's email, `cli:<os user>`, or `auto-rollback`. */
  actor: z.string(),
  at: z.iso.datetime(),
});

/** A change of the rollout. */
export type RolloutChange = z.infer<typeof rolloutChangeSchema>;

/** The rollout now: the percentage and the change that set it. */
export const rolloutStateSchema = z.strictObject({
  percent: z.int().min(0).max(100),
  last_change: rolloutChangeSchema.nullable(),
});

/** The rollout now. */
export type RolloutState = z.infer<typeof rolloutStateSchema>;

/** The current percentage (100 when the row is missing: everybody sees the dashboard). */
export async function rolloutPercent(q: Queryable): Promise<number> {
  const [row] = await q<{ value: number }[]>`SELECT value FROM app_settings WHERE key = ${KEY}`;
  return row ? Number(row.value) : 100;
}

/** The percentage and its last change. */
export async function rolloutState(q: Queryable): Promise<RolloutState> {
  const [row] = await q<{ percent: number; change: RolloutChange | null }[]>`
    SELECT coalesce((SELECT value::int FROM app_settings WHERE key = ${KEY}), 100) AS percent,
      (SELECT details || jsonb_build_object('actor_id', actor_id, 'at', iso_utc(at))
         FROM audit_log WHERE action = 'rollout.set' ORDER BY at DESC, id DESC LIMIT 1) AS change`;
  return { percent: row.percent, last_change: row.change };
}

/** A change to make. */
export interface RolloutRequest {
  percent: number;
  reason: string | null;
  source: RolloutSource;
  actorId: number | null;
  /** Who, in words (an admin's email, `cli:<user>`, `auto-rollback`). */
  actor: string;
  /**
   * Compare-and-set: change only from this value and last change (its `at`, null before any); the
   * automatic rollback and `advance` use it.
   */
  onlyFrom?: (current: number, lastChangeAt: string | null) => boolean;
}

/**
 * Sets the percentage and audits it, in one transaction (the row is locked, so
 * concurrent changes serialize). Returns the change, or null when `onlyFrom`
 * refused the current value (nothing written).
 */
export async function setRollout(sql: Sql, change: RolloutRequest): Promise<RolloutChange | null> {
  return await transaction(sql, async (tx) => {
    await tx`INSERT INTO app_settings (key, value) VALUES (${KEY}, '100') ON CONFLICT (key) DO NOTHING`;
    const [{ value: from }] = await tx<{ value: number }[]>`
      SELECT value::int AS value FROM app_settings WHERE key = ${KEY} FOR UPDATE`;
    if (change.onlyFrom) {
      // Read after the row lock: a change committed meanwhile is seen here.
      const [last] = await tx<{ at: string }[]>`
        SELECT iso_utc(at) AS at FROM audit_log WHERE action = 'rollout.set' ORDER BY at DESC, id DESC LIMIT 1`;
      if (!change.onlyFrom(from, last?.at ?? null)) return null;
    }
    await tx`
      UPDATE app_settings SET value = to_jsonb(${change.percent}::int), updated_at = now(),
        updated_by = ${change.actorId}
      WHERE key = ${KEY}`;
    // The time of the change, not of the transaction's start (which may precede a change
    // it waited for): the latest row by `at` stays the current step.
    const details = {
      from,
      to: change.percent,
      reason: change.reason,
      source: change.source,
      actor: change.actor,
    };
    const [audit] = await tx<{ at: string }[]>`
      INSERT INTO audit_log (actor_id, action, details, at)
      VALUES (${change.actorId}, 'rollout.set', ${tx.json(details)}, clock_timestamp())
      RETURNING iso_utc(at) AS at`;
    return { ...details, actor_id: change.actorId, at: audit.at };
  });
}

/** An admin's email for the audit trail; throws Unauthenticated when the account is gone or inactive. */
export async function activeAdminEmail(q: Queryable, userId: number): Promise<string> {
  const [row] = await q<{ email: string }[]>`
    SELECT email FROM users WHERE id = ${userId} AND is_active AND role = 'ADMIN'`;
  if (!row) throw new Unauthenticated("The token's user no longer exists, is inactive or is not an admin");
  return row.email;
}

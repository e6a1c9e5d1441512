/**
 * Repair: re-syncs licenses from progress (progress is the source of truth).
 * A progress level that does not match its XP is first recomputed from the
 * thresholds, then the license takes that level (created when missing;
 * max_achieved_level raised, never lowered). Orphan licenses and ledger
 * mismatches are reported, never changed: there is no progress to copy from,
 * and the append-only ledger cannot say whether total_xp or the ledger is wrong.
 */
import { z } from "zod";
import type { Sql } from "../db.ts";
import { SPECIALIZATION_IDS, type SpecializationId } from "../model.ts";
import type { IntegrityRunner } from "./runner.ts";
import { checkRecordSchema } from "./store.ts";
import { transaction } from "../connection.ts";

/** Lists in the response are capped; counts are not. */
export const REPAIR_LIST_LIMIT = 1000;

const levelChange = z.strictObject({ before: z.int().nullable(), after: z.int() }).nullable();

/** What changed (or would change) for one pair. */
const pairRepairSchema = z.strictObject({
  student_id: z.int(),
  specialization_id: z.enum(SPECIALIZATION_IDS),
  progress_level: levelChange,
  license_level: levelChange,
  max_achieved_level: levelChange,
  license_created: z.boolean(),
});

/** A violation repair leaves alone, and why. */
const notRepairableSchema = z.strictObject({
  student_id: z.int(),
  specialization_id: z.enum(SPECIALIZATION_IDS),
  kind: z.enum(["ORPHAN_LICENSE", "LEDGER_MISMATCH"]),
  reason: z.string(),
});

const common = {
  student_id: z.int().nullable(),
  changes: z.array(pairRepairSchema),
  changes_truncated: z.boolean(),
  not_repairable: z.array(notRepairableSchema),
  not_repairable_total: z.int(),
};

/**
 * What a repair did (`dry_run: false`: `repaired_pairs`, its audit entry and
 * the check run right after it) or would do (`dry_run: true`: `would_repair`,
 * nothing written). The schema is the type.
 */
export const repairResultSchema = z.discriminatedUnion("dry_run", [
  z.strictObject({ dry_run: z.literal(true), would_repair: z.int(), ...common }),
  z.strictObject({
    dry_run: z.literal(false),
    repaired_pairs: z.int(),
    ...common,
    audit_id: z.int(),
    /** The full check run right after the repair, so the status shows the repaired state. */
    check: checkRecordSchema.nullable(),
  }),
]);

/** One pair's change. */
export type PairRepair = z.infer<typeof pairRepairSchema>;
/** A pair left alone. */
export type NotRepairable = z.infer<typeof notRepairableSchema>;
/** What `repair` returns (the real repair's `check` is filled in by the caller). */
export type RepairResult = z.infer<typeof repairResultSchema>;

const REASONS = {
  ORPHAN_LICENSE: "no progress row to sync from; the license is kept for a person to decide",
  LEDGER_MISMATCH: "total_xp differs from the XP ledger; re-syncing licenses cannot tell which one is right",
};

/** Repairs all pairs, or one student's; with `dryRun` it only reports. */
export async function repair(
  sql: Sql,
  options: { studentId?: number; dryRun: boolean; actorId: number | null },
): Promise<RepairResult> {
  const studentId = options.studentId ?? null;
  return await transaction(sql, async (tx) => {
    const inScope = (column: string) => studentId === null ? tx`true` : tx`${tx(column)} = ${studentId}`;
    const buildPlan = (restrict: boolean) =>
      tx`
      CREATE TEMP TABLE integrity_repair_plan ON COMMIT DROP AS
      WITH pairs AS (
        SELECT p.id AS progress_id, l.id AS license_id, p.student_id, p.specialization_id,
               p.current_level AS progress_before, l.current_level AS license_before,
               l.max_achieved_level AS max_before, level_on_scale(v.thresholds, v.reached, p.total_xp) AS level
        FROM specialization_progress p
        JOIN level_scale v ON v.specialization_id = p.specialization_id
        LEFT JOIN user_licenses l ON l.user_id = p.student_id AND l.specialization_type = p.specialization_id
        WHERE ${inScope("p.student_id")}
          ${restrict ? tx`AND p.id IN (SELECT progress_id FROM integrity_repair_candidates)` : tx``}
      )
      SELECT *, greatest(coalesce(max_before, 0), level) AS max_after FROM pairs
      WHERE progress_before <> level OR license_id IS NULL OR license_before <> level OR max_before < level`;

    await buildPlan(false);
    if (!options.dryRun) {
      // The enforcer's lock order: progress rows, then license rows (each in id order).
      await tx`ALTER TABLE integrity_repair_plan RENAME TO integrity_repair_candidates`;
      await tx`
        SELECT id FROM specialization_progress
        WHERE id IN (SELECT progress_id FROM integrity_repair_candidates) ORDER BY id FOR UPDATE`;
      await tx`
        SELECT l.id FROM user_licenses l JOIN integrity_repair_candidates c
          ON l.user_id = c.student_id AND l.specialization_type = c.specialization_id
        ORDER BY l.id FOR UPDATE OF l`;
      // Re-planned under the locks: what is written is what the rows hold now.
      await buildPlan(true);
      await tx`
        UPDATE specialization_progress p SET current_level = r.level, updated_at = now()
        FROM integrity_repair_plan r WHERE p.id = r.progress_id AND p.current_level <> r.level`;
      await tx`
        UPDATE user_licenses l SET current_level = r.level, max_achieved_level = r.max_after, updated_at = now()
        FROM integrity_repair_plan r
        WHERE l.id = r.license_id AND (l.current_level <> r.level OR l.max_achieved_level <> r.max_after)`;
      await tx`
        INSERT INTO user_licenses (user_id, specialization_type, current_level, max_achieved_level)
        SELECT student_id, specialization_id, level, level FROM integrity_repair_plan WHERE license_id IS NULL
        ON CONFLICT (user_id, specialization_type) DO NOTHING`;
    }
    const [{ n }] = await tx<{ n: number }[]>`SELECT count(*) AS n FROM integrity_repair_plan`;
    const plan = await tx<{
      student_id: number;
      specialization_id: SpecializationId;
      progress_before: number;
      license_id: number | null;
      license_before: number | null;
      max_before: number | null;
      level: number;
      max_after: number;
    }[]>`
      SELECT student_id, specialization_id, progress_before, license_id, license_before, max_before, level, max_after
      FROM integrity_repair_plan ORDER BY student_id, specialization_id LIMIT ${REPAIR_LIST_LIMIT}`;
    const changes = plan.map((r): PairRepair => ({
      student_id: r.student_id,
      specialization_id: r.specialization_id,
      progress_level: r.progress_before !== r.level ? { before: r.progress_before, after: r.level } : null,
      license_level: r.license_before !== r.level ? { before: r.license_before, after: r.level } : null,
      max_achieved_level: r.max_before !== r.max_after ? { before: r.max_before, after: r.max_after } : null,
      license_created: r.license_id === null,
    }));

    const unfixable = tx`
      SELECT l.user_id AS student_id, l.specialization_type AS specialization_id, 'ORPHAN_LICENSE' AS kind
      FROM user_licenses l
      WHERE ${inScope("l.user_id")} AND NOT EXISTS (
        SELECT 1 FROM specialization_progress p
        WHERE p.student_id = l.user_id AND p.specialization_id = l.specialization_type)
      UNION ALL
      SELECT p.student_id, p.specialization_id, 'LEDGER_MISMATCH'
      FROM specialization_progress p
      LEFT JOIN (
        SELECT student_id, specialization_id, xp FROM ledger_totals WHERE ${inScope("student_id")}
      ) e ON e.student_id = p.student_id AND e.specialization_id = p.specialization_id
      WHERE ${inScope("p.student_id")} AND p.total_xp <> coalesce(e.xp, 0)`;
    const notRepairable = await tx<(Omit<NotRepairable, "reason"> & { total: number })[]>`
      SELECT *, count(*) OVER () AS total FROM (${unfixable}) u
      ORDER BY student_id, specialization_id, kind LIMIT ${REPAIR_LIST_LIMIT}`;

    const listed = {
      student_id: studentId,
      changes,
      changes_truncated: n > changes.length,
      not_repairable: notRepairable.map(({ total: _total, ...r }) => ({ ...r, reason: REASONS[r.kind] })),
      not_repairable_total: notRepairable[0]?.total ?? 0,
    };
    if (options.dryRun) return { dry_run: true, would_repair: n, ...listed };
    const [audit] = await tx<{ id: number }[]>`
      INSERT INTO audit_log (actor_id, action, details)
      VALUES (
        (SELECT id FROM users WHERE id = ${options.actorId}),
        'integrity.repair',
        ${
      tx.json({
        student_id: studentId,
        requested_by: options.actorId,
        repaired_pairs: n,
        pairs: changes.slice(0, 100).map((c) => [c.student_id, c.specialization_id]),
        not_repairable: notRepairable[0]?.total ?? 0,
      })
    }
      ) RETURNING id`;
    return { dry_run: false, repaired_pairs: n, ...listed, audit_id: audit.id, check: null };
  });
}

/**
 * Repairs (or previews) and, after a real repair, runs a full check that sees
 * it, so the status and the violations list show the repaired state at once.
 * The API and the dashboard both repair through here.
 */
export async function repairAndCheck(
  sql: Sql,
  runner: IntegrityRunner,
  options: { studentId?: number; dryRun: boolean; actorId: number | null },
): Promise<RepairResult> {
  const result = await repair(sql, options);
  if (!result.dry_run) result.check = await runner.run("repair", null, { fresh: true });
  return result;
}

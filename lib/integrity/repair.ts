/**
 * Repair: re-syncs licenses from progress (progress is the source of truth).
 * A progress level that does not match its XP is first recomputed from the
 * thresholds, then the license takes that level (created when missing;
 * max_achieved_level raised, never lowered). Orphan licenses and ledger
 * mismatches are reported, never changed: there is no progress to copy from,
 * and the append-only ledger cannot say whether total_xp or the ledger is wrong.
 */
import type { Sql } from "../db.ts";

/** Lists in the response are capped; counts are not. */
export const REPAIR_LIST_LIMIT = 1000;

/** A before/after pair of levels. */
export interface LevelChange {
  before: number | null;
  after: number;
}

/** What changed (or would change) for one pair. */
export interface PairRepair {
  student_id: number;
  specialization_id: string;
  progress_level: LevelChange | null;
  license_level: LevelChange | null;
  max_achieved_level: LevelChange | null;
  license_created: boolean;
}

/** A violation repair leaves alone, and why. */
export interface NotRepairable {
  student_id: number;
  specialization_id: string;
  kind: "ORPHAN_LICENSE" | "LEDGER_MISMATCH";
  reason: string;
}

/** The body of POST /api/v1/health/violations/repair. */
export interface RepairResult {
  dry_run: boolean;
  student_id: number | null;
  repaired_pairs: number;
  changes: PairRepair[];
  changes_truncated: boolean;
  not_repairable: NotRepairable[];
  not_repairable_total: number;
  audit_id: number | null;
}

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
  return await sql.begin(async (tx) => {
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
      specialization_id: string;
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
    const notRepairable = await tx<(NotRepairable & { total: number })[]>`
      SELECT *, count(*) OVER () AS total FROM (${unfixable}) u
      ORDER BY student_id, specialization_id, kind LIMIT ${REPAIR_LIST_LIMIT}`;

    let auditId: number | null = null;
    if (!options.dryRun) {
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
      auditId = audit.id;
    }
    return {
      dry_run: options.dryRun,
      student_id: studentId,
      repaired_pairs: n,
      changes,
      changes_truncated: n > changes.length,
      not_repairable: notRepairable.map(({ total: _total, ...r }) => ({ ...r, reason: REASONS[r.kind] })),
      not_repairable_total: notRepairable[0]?.total ?? 0,
      audit_id: auditId,
    };
  });
}

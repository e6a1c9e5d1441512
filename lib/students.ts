/** One student as an admin looks at them: each pair side by side, and the XP ledger. */
import type { Queryable } from "./db.ts";
import { NotFound } from "./errors.ts";
import type { SpecializationId, ViolationKind } from "./model.ts";

/** One specialization of a student: the progress row, the license row, and whether they agree. */
export interface StudentPair {
  specialization_id: SpecializationId;
  progress: { current_level: number; total_xp: number; updated_at: string } | null;
  license: { current_level: number; max_achieved_level: number; updated_at: string } | null;
  /** The level the thresholds give for total_xp. */
  expected_level: number | null;
  /** What the ledger adds up to. */
  ledger_xp: number;
  /** What disagrees (the scan's kinds), empty when the pair is coupled. */
  problems: ViolationKind[];
}

/** One ledger row. */
export interface LedgerEntry {
  id: number;
  at: string;
  specialization_id: SpecializationId;
  xp_change: number;
  xp_before: number;
  xp_after: number;
  level_before: number;
  level_after: number;
  actor: string | null;
  source: string;
  request_id: string | null;
}

/** Everything the student page shows. */
export interface StudentDetail {
  id: number;
  email: string;
  full_name: string;
  role: string;
  is_active: boolean;
  pairs: StudentPair[];
  ledger: LedgerEntry[];
  ledger_total: number;
}

/** How many ledger rows the page lists (newest first). */
export const LEDGER_LIMIT = 200;

/** The student `id`, or NotFound. Pairs are checked with the scan's own rules (`pair_violations`). */
export async function studentDetail(q: Queryable, id: number): Promise<StudentDetail> {
  const [user] = await q<
    { id: number; email: string; full_name: string; role: string; is_active: boolean }[]
  >`
    SELECT id, email, full_name, role, is_active FROM users WHERE id = ${id}`;
  if (!user) throw new NotFound(`No user with id ${id}`);
  const rows = await q<(StudentPair & { problems: ViolationKind[] | null })[]>`
    SELECT s.id AS specialization_id,
      CASE WHEN p.id IS NULL THEN NULL ELSE json_build_object(
        'current_level', p.current_level, 'total_xp', p.total_xp, 'updated_at', iso_utc(p.updated_at)) END AS progress,
      CASE WHEN l.id IS NULL THEN NULL ELSE json_build_object(
        'current_level', l.current_level, 'max_achieved_level', l.max_achieved_level,
        'updated_at', iso_utc(l.updated_at)) END AS license,
      CASE WHEN p.id IS NULL THEN NULL ELSE level_on_scale(v.thresholds, v.reached, p.total_xp) END AS expected_level,
      coalesce(e.xp, 0) AS ledger_xp,
      ARRAY(
        SELECT k.kind FROM pair_violations(
          p.id IS NOT NULL, l.id IS NOT NULL, p.current_level, l.current_level, l.max_achieved_level,
          level_on_scale(v.thresholds, v.reached, p.total_xp), p.total_xp, coalesce(e.xp, 0)) AS k
      ) AS problems
    FROM specializations s
    JOIN level_scale v ON v.specialization_id = s.id
    LEFT JOIN specialization_progress p ON p.student_id = ${id} AND p.specialization_id = s.id
    LEFT JOIN user_licenses l ON l.user_id = ${id} AND l.specialization_type = s.id
    LEFT JOIN ledger_totals e ON e.student_id = ${id} AND e.specialization_id = s.id
    WHERE p.id IS NOT NULL OR l.id IS NOT NULL
    ORDER BY s.id`;
  const ledger = await q<LedgerEntry[]>`
    SELECT x.id, iso_utc(x.created_at) AS at, x.specialization_id, x.xp_change, x.xp_before, x.xp_after,
           x.level_before, x.level_after, a.email AS actor, x.source, x.request_id
    FROM xp_events x LEFT JOIN users a ON a.id = x.actor_id
    WHERE x.student_id = ${id}
    ORDER BY x.id DESC LIMIT ${LEDGER_LIMIT}`;
  const [{ total }] = await q<{ total: number }[]>`
    SELECT count(*)::int AS total FROM xp_events WHERE student_id = ${id}`;
  return {
    ...user,
    pairs: rows.map((r) => ({ ...r, problems: r.problems ?? [] })),
    ledger: [...ledger],
    ledger_total: total,
  };
}

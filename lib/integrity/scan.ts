/**
 * The set-based integrity scan: one pass over every progress/license pair
 * (plus the XP ledger) per range of students. Violations are
 * computed and stored by PostgreSQL; nothing proportional to the data passes
 * through this process.
 */
import { copyStream } from "../copy_stream.ts";
import type { Queryable } from "../db.ts";
import { VIOLATION_KINDS, type ViolationKind } from "../model.ts";

/** What a scan of one range of students found. */
export interface ScanCounts {
  pairsChecked: number;
  consistentPairs: number;
  violationCount: number;
  countsByKind: Record<ViolationKind, number>;
}

/** Zero counts, the identity of `addCounts`. */
export function emptyCounts(): ScanCounts {
  const countsByKind = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<
    ViolationKind,
    number
  >;
  return { pairsChecked: 0, consistentPairs: 0, violationCount: 0, countsByKind };
}

/** Sums the counts of disjoint ranges. */
export function addCounts(a: ScanCounts, b: ScanCounts): ScanCounts {
  const sum = emptyCounts();
  for (const k of VIOLATION_KINDS) sum.countsByKind[k] = a.countsByKind[k] + b.countsByKind[k];
  sum.pairsChecked = a.pairsChecked + b.pairsChecked;
  sum.consistentPairs = a.consistentPairs + b.consistentPairs;
  sum.violationCount = a.violationCount + b.violationCount;
  return sum;
}

/** Lowest and highest student id with a progress row or a license (null when there is none). */
export async function studentIdBounds(q: Queryable): Promise<{ lo: number; hi: number } | null> {
  const [row] = await q<{ lo: number | null; hi: number | null }[]>`
    SELECT least((SELECT min(student_id) FROM specialization_progress), (SELECT min(user_id) FROM user_licenses)) AS lo,
           greatest((SELECT max(student_id) FROM specialization_progress), (SELECT max(user_id) FROM user_licenses)) AS hi`;
  return row.lo === null || row.hi === null ? null : { lo: row.lo, hi: row.hi };
}

/** Splits [lo, hi] into at most `parts` contiguous ranges. */
export function splitRange(lo: number, hi: number, parts: number): [number, number][] {
  const n = Math.max(1, Math.min(parts, hi - lo + 1));
  const size = Math.ceil((hi - lo + 1) / n);
  const ranges: [number, number][] = [];
  for (let from = lo; from <= hi; from += size) ranges.push([from, Math.min(hi, from + size - 1)]);
  return ranges;
}

/** Planner settings for a scan transaction (SET LOCAL: they end with it). */
async function tune(tx: Queryable) {
  // Grouping the ledger along its (student, specialization) index and merge
  // joining on the unique keys streams in key order, with no hash table the
  // size of the data: measured 2-3x faster than the hash plan at 100K-1M
  // students. The runner scans ranges on parallel connections itself, and
  // JIT compilation costs more than it saves on this query.
  await tx`SET LOCAL enable_hashagg = off`;
  await tx`SET LOCAL enable_hashjoin = off`;
  await tx`SET LOCAL max_parallel_workers_per_gather = 0`;
  await tx`SET LOCAL jit = off`;
  await tx`SET LOCAL work_mem = '64MB'`;
}

/**
 * The violations of students `lo`..`hi` as one SELECT (student_id,
 * specialization_id, kind, details). Integers only, checked, so it can be
 * inlined where bind parameters are not allowed (COPY).
 */
export function violationsSelect(lo: number, hi: number): string {
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) {
    throw new Error("student id bounds must be integers");
  }
  return `
    WITH pairs AS (
      -- Progress joined to its ledger first: the result stays in key order for the full join.
      SELECT coalesce(p.student_id, l.user_id) AS student_id,
             coalesce(p.specialization_id, l.specialization_type) AS specialization_id,
             p.student_id IS NOT NULL AS has_progress, l.user_id IS NOT NULL AS has_license,
             p.current_level AS progress_level, p.total_xp, coalesce(e.xp, 0) AS ledger_xp,
             l.current_level AS license_level, l.max_achieved_level,
             level_on_scale(v.thresholds, v.reached, p.total_xp) AS expected_level
      FROM (
        SELECT student_id, specialization_id, current_level, total_xp FROM specialization_progress
        WHERE student_id BETWEEN ${lo} AND ${hi}
      ) p
      LEFT JOIN (
        SELECT student_id, specialization_id, xp FROM ledger_totals WHERE student_id BETWEEN ${lo} AND ${hi}
      ) e ON e.student_id = p.student_id AND e.specialization_id = p.specialization_id
      FULL JOIN (
        SELECT user_id, specialization_type, current_level, max_achieved_level FROM user_licenses
        WHERE user_id BETWEEN ${lo} AND ${hi}
      ) l ON l.user_id = p.student_id AND l.specialization_type = p.specialization_id
      LEFT JOIN level_scale v ON v.specialization_id = p.specialization_id
      WHERE p.student_id IS NULL OR l.user_id IS NULL
         OR l.current_level <> p.current_level
         OR l.max_achieved_level < l.current_level
         OR p.current_level <> level_on_scale(v.thresholds, v.reached, p.total_xp)
         OR p.total_xp <> coalesce(e.xp, 0)
    )
    SELECT x.student_id, x.specialization_id, k.kind, k.details
    FROM pairs x
    CROSS JOIN LATERAL pair_violations(
      x.has_progress, x.has_license, x.progress_level, x.license_level, x.max_achieved_level,
      x.expected_level, x.total_xp, x.ledger_xp) AS k`;
}

/**
 * Scans the pairs of students `lo`..`hi`: finds every violation into a
 * temporary table, copies them into `integrity_violations` under `checkId`
 * and returns the counts. Call inside a REPEATABLE READ transaction, so every
 * statement sees one snapshot.
 */
export async function scanRange(tx: Queryable, checkId: number, lo: number, hi: number): Promise<ScanCounts> {
  await tune(tx);
  await tx`DROP TABLE IF EXISTS pg_temp.integrity_scan_found`;
  // The level rule (level_scale, level_on_scale), the ledger sum (ledger_totals,
  // both migrations/0005) and what makes a pair wrong (pair_violations, 0007)
  // are the database's own definitions.
  await tx.unsafe(`CREATE TEMP TABLE integrity_scan_found ON COMMIT DROP AS ${violationsSelect(lo, hi)}`);
  const [counts] = await tx<
    { progress_pairs: number; orphans: number; bad_pairs: number; violations: number }[]
  >`
    SELECT
      (SELECT count(*) FROM specialization_progress WHERE student_id BETWEEN ${lo} AND ${hi}) AS progress_pairs,
      (SELECT count(*) FROM integrity_scan_found WHERE kind = 'ORPHAN_LICENSE') AS orphans,
      (SELECT count(*) FROM (SELECT DISTINCT student_id, specialization_id FROM integrity_scan_found) d) AS bad_pairs,
      (SELECT count(*) FROM integrity_scan_found) AS violations`;
  const byKind = await tx<{ kind: ViolationKind; n: number }[]>`
    SELECT kind, count(*) AS n FROM integrity_scan_found GROUP BY kind`;
  await tx`
    INSERT INTO integrity_violations (check_id, kind, student_id, specialization_id, details)
    SELECT ${checkId}, kind, student_id, specialization_id, details
    FROM integrity_scan_found ORDER BY student_id, specialization_id, kind`;
  await tx`DROP TABLE integrity_scan_found`;
  return scanCounts(counts.progress_pairs, counts, byKind);
}

/**
 * A range's counts from what was found: every progress row is a pair, and so is
 * every orphan license; a pair with any violation is not consistent.
 */
function scanCounts(
  progressPairs: number,
  found: { orphans: number; bad_pairs: number; violations: number },
  byKind: { kind: ViolationKind; n: number }[],
): ScanCounts {
  const result = emptyCounts();
  for (const row of byKind) result.countsByKind[row.kind] = row.n;
  result.pairsChecked = progressPairs + found.orphans;
  result.consistentPairs = result.pairsChecked - found.bad_pairs;
  result.violationCount = found.violations;
  return result;
}

/**
 * Scans students `lo`..`hi` reading on a replica: `replica` is a REPEATABLE
 * READ READ ONLY transaction there (a standby allows no temporary table), the
 * violations stream with COPY into `integrity_violations` on `primary`, and
 * the counts are taken from what arrived. Only rows proportional to the
 * violations cross this process.
 */
export async function scanRangeFromReplica(
  replica: Queryable,
  primary: Queryable,
  checkId: number,
  lo: number,
  hi: number,
): Promise<ScanCounts> {
  if (!Number.isSafeInteger(checkId)) throw new Error("check id must be an integer");
  await tune(replica);
  const [{ n: progressPairs }] = await replica<{ n: number }[]>`
    SELECT count(*)::int AS n FROM specialization_progress WHERE student_id BETWEEN ${lo} AND ${hi}`;
  await copyStream(
    replica,
    primary,
    `SELECT ${checkId}, kind, student_id, specialization_id, details FROM (${violationsSelect(lo, hi)}) found
     ORDER BY student_id, specialization_id, kind`,
    "integrity_violations (check_id, kind, student_id, specialization_id, details)",
    () => {},
  );
  const [found] = await primary<{ orphans: number; bad_pairs: number; violations: number }[]>`
    SELECT count(*) FILTER (WHERE kind = 'ORPHAN_LICENSE')::int AS orphans,
      count(DISTINCT (student_id, specialization_id))::int AS bad_pairs, count(*)::int AS violations
    FROM integrity_violations WHERE check_id = ${checkId} AND student_id BETWEEN ${lo} AND ${hi}`;
  const byKind = await primary<{ kind: ViolationKind; n: number }[]>`
    SELECT kind, count(*)::int AS n FROM integrity_violations
    WHERE check_id = ${checkId} AND student_id BETWEEN ${lo} AND ${hi} GROUP BY kind`;
  return scanCounts(progressPairs, found, byKind);
}

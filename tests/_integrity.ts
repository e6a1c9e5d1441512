/** Integrity test fixtures: consistent seed data plus one known desync of every kind. */
import type { Queryable, Sql } from "../lib/db.ts";
import { SCAN_LOCK_KEY } from "../lib/integrity/scan_lock.ts";
import { setQuiet } from "../lib/log.ts";
import { seed } from "../lib/seed.ts";

setQuiet(true);

/** One expected violation. */
export interface Expected {
  kind: string;
  student_id: number;
  specialization_id: string;
}

/** Seeds `students` consistent students (ids 1..N); returns the number of pairs. */
export async function seedConsistent(sql: Sql, students = 200): Promise<number> {
  const result = await seed(sql, {
    students,
    desyncRate: 0,
    adminEmail: "admin@staging.example.com",
    adminPassword: "admin-password",
    studentPassword: "student-password",
  });
  return result.progressRows;
}

/** A pair of `student` (its first by specialization), with its progress level. */
async function pairOf(sql: Sql, student: number, minLevel = 1) {
  const [row] = await sql<{ specialization_id: string; current_level: number; total_xp: number }[]>`
    SELECT specialization_id, current_level, total_xp FROM specialization_progress
    WHERE student_id = ${student} AND current_level >= ${minLevel}
    ORDER BY specialization_id LIMIT 1`;
  return row;
}

/** The first student after `after` with a pair at level `minLevel` or more. */
async function studentWithLevel(sql: Sql, after: number, minLevel: number): Promise<number> {
  const [row] = await sql<{ student_id: number }[]>`
    SELECT min(student_id) AS student_id FROM specialization_progress
    WHERE student_id > ${after} AND current_level >= ${minLevel}`;
  return row.student_id;
}

/**
 * Breaks pairs of seven students with plain SQL (around the enforcer): one
 * desync of each kind, plus one pair with two kinds. Returns the violations a
 * scan must report and the number of distinct pairs broken.
 */
export async function breakKnownPairs(sql: Sql): Promise<{ expected: Expected[]; brokenPairs: number }> {
  const expected: Expected[] = [];
  const add = (kind: string, student_id: number, specialization_id: string) =>
    expected.push({ kind, student_id, specialization_id });

  // LEVEL_MISMATCH: the license is at another level (max raised so it is not also below).
  let s = await studentWithLevel(sql, 0, 1);
  let p = await pairOf(sql, s);
  const other = p.current_level > 1 ? 1 : 2;
  await sql`UPDATE user_licenses SET current_level = ${other}, max_achieved_level = greatest(max_achieved_level, ${other})
    WHERE user_id = ${s} AND specialization_type = ${p.specialization_id}`;
  add("LEVEL_MISMATCH", s, p.specialization_id);

  // MISSING_LICENSE
  s = await studentWithLevel(sql, s, 1);
  p = await pairOf(sql, s);
  await sql`DELETE FROM user_licenses WHERE user_id = ${s} AND specialization_type = ${p.specialization_id}`;
  add("MISSING_LICENSE", s, p.specialization_id);

  // ORPHAN_LICENSE: the progress row is gone, its license stays.
  s = await studentWithLevel(sql, s, 1);
  p = await pairOf(sql, s);
  await sql`DELETE FROM specialization_progress WHERE student_id = ${s} AND specialization_id = ${p.specialization_id}`;
  add("ORPHAN_LICENSE", s, p.specialization_id);

  // MAX_LEVEL_BELOW_CURRENT: the highest level reached is below the current one.
  s = await studentWithLevel(sql, s, 2);
  p = await pairOf(sql, s, 2);
  await sql`UPDATE user_licenses SET max_achieved_level = current_level - 1
    WHERE user_id = ${s} AND specialization_type = ${p.specialization_id}`;
  add("MAX_LEVEL_BELOW_CURRENT", s, p.specialization_id);

  // LEVEL_XP_MISMATCH: progress and license agree, but not with the XP.
  s = await studentWithLevel(sql, s, 2);
  p = await pairOf(sql, s, 2);
  await sql`UPDATE specialization_progress SET current_level = current_level - 1
    WHERE student_id = ${s} AND specialization_id = ${p.specialization_id}`;
  await sql`UPDATE user_licenses SET current_level = current_level - 1
    WHERE user_id = ${s} AND specialization_type = ${p.specialization_id}`;
  add("LEVEL_XP_MISMATCH", s, p.specialization_id);

  // LEDGER_MISMATCH: a ledger entry that total_xp never got.
  s = await studentWithLevel(sql, s, 1);
  p = await pairOf(sql, s);
  await sql`INSERT INTO xp_events
      (student_id, specialization_id, xp_change, xp_before, xp_after, level_before, level_after, source)
    VALUES (${s}, ${p.specialization_id}, 5, ${p.total_xp}, ${
    p.total_xp + 5
  }, ${p.current_level}, ${p.current_level}, 'import')`;
  add("LEDGER_MISMATCH", s, p.specialization_id);

  // Two kinds on one pair: license at another level and below its own max.
  s = await studentWithLevel(sql, s, 3);
  p = await pairOf(sql, s, 3);
  await sql`UPDATE user_licenses SET current_level = 2, max_achieved_level = 1
    WHERE user_id = ${s} AND specialization_type = ${p.specialization_id}`;
  add("LEVEL_MISMATCH", s, p.specialization_id);
  add("MAX_LEVEL_BELOW_CURRENT", s, p.specialization_id);

  const brokenPairs = new Set(expected.map((e) => `${e.student_id}/${e.specialization_id}`)).size;
  return { expected: sortExpected(expected), brokenPairs };
}

/** Sorts violations the way comparisons expect. */
export function sortExpected<T extends Expected>(items: T[]): Expected[] {
  return items.map(({ kind, student_id, specialization_id }) => ({ kind, student_id, specialization_id }))
    .sort((a, b) =>
      a.student_id - b.student_id || a.specialization_id.localeCompare(b.specialization_id) ||
      a.kind.localeCompare(b.kind)
    );
}

/**
 * Breaks one more pair around the enforcer: the license of the first
 * consistent pair of a student after `after` goes missing.
 */
export async function breakOne(sql: Queryable, after = 0): Promise<void> {
  await sql`
    DELETE FROM user_licenses WHERE id = (
      SELECT l.id FROM user_licenses l
      JOIN specialization_progress p ON p.student_id = l.user_id AND p.specialization_id = l.specialization_type
      WHERE l.user_id > ${after} AND p.current_level = l.current_level
        AND l.max_achieved_level >= l.current_level
      ORDER BY l.user_id, l.id LIMIT 1)`;
}

/**
 * Holds `user_licenses` locked (ACCESS EXCLUSIVE, in an open transaction on a
 * connection of `sql`), so a check that took the scan lock stays in progress;
 * the returned function commits and lets it go on.
 */
export async function blockScans(sql: Sql): Promise<() => Promise<void>> {
  const conn = await sql.reserve();
  await conn`BEGIN`;
  await conn`LOCK TABLE user_licenses IN ACCESS EXCLUSIVE MODE`;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await conn`COMMIT`;
    conn.release();
  };
}

/** Whether some session holds the scan lock (the advisory lock a full check takes). */
export async function scanLockHeld(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objid = ${SCAN_LOCK_KEY}
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
  return row.n > 0;
}

/** Breaks a fraction of pairs by deleting their licenses (for a critical status). */
export async function dropLicenses(sql: Sql, everyNth: number): Promise<number> {
  const result = await sql`
    DELETE FROM user_licenses WHERE id IN (
      SELECT id FROM user_licenses WHERE id % ${everyNth} = 0)`;
  return result.count;
}

/**
 * Pairs where progress, license, thresholds or ledger disagree: an oracle
 * independent of the scan's query, over the database's own definitions
 * (`level_for_xp`, `ledger_totals`).
 */
export async function desyncs(q: Queryable): Promise<number> {
  const [{ n }] = await q<{ n: number }[]>`
    SELECT count(*)::int AS n
    FROM specialization_progress p
    FULL JOIN user_licenses l ON l.user_id = p.student_id AND l.specialization_type = p.specialization_id
    LEFT JOIN ledger_totals e ON e.student_id = p.student_id AND e.specialization_id = p.specialization_id
    WHERE p.id IS NULL OR l.id IS NULL OR l.current_level <> p.current_level
       OR l.max_achieved_level < l.current_level
       OR p.current_level <> level_for_xp(p.specialization_id, p.total_xp)
       OR e.xp IS DISTINCT FROM p.total_xp`;
  return n;
}

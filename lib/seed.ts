/** Staging and demo data, written with set-based SQL (no per-row round trips). */
import type { Queryable, Sql } from "./db.ts";
import { Conflict } from "./errors.ts";
import { hashPassword } from "./password.ts";
import { transaction } from "./connection.ts";

/** What to create. */
export interface SeedOptions {
  students: number;
  /** Fraction (0..1) of progress/license pairs broken on purpose. */
  desyncRate: number;
  adminEmail: string;
  adminPassword: string;
  studentPassword: string;
  /** Makes the data reproducible. */
  randomSeed?: number;
}

/** What was created. */
export interface SeedResult {
  students: number;
  progressRows: number;
  desyncedPairs: number;
  adminId: number;
  instructorId: number;
  instructorEmail: string;
}

/** Students per chunk: big enough to stay set-based, small enough to report progress. */
export const SEED_CHUNK = 50_000;

/**
 * Student ids are 1..N so load scripts can address them; the database must
 * have no users yet. One transaction: all of it or nothing.
 */
export async function seed(
  sql: Sql,
  options: SeedOptions,
  onProgress?: (done: number, total: number) => void,
): Promise<SeedResult> {
  const { students, desyncRate } = options;
  // Students share one hash: hashing a million passwords would take hours,
  // and staging students log in with the shared SEED_STUDENT_PASSWORD anyway.
  const [studentHash, adminHash] = await Promise.all([
    hashPassword(options.studentPassword),
    hashPassword(options.adminPassword),
  ]);
  const instructorEmail = options.adminEmail.replace(/^[^@]*/, "instructor");
  return await transaction(sql, async (tx) => {
    const [{ count }] = await tx<{ count: number }[]>`SELECT count(*)::int AS count FROM users`;
    if (count > 0) {
      throw new Conflict(`the database already has ${count} users; seed fills an empty database`);
    }
    await tx`SELECT setseed(${((options.randomSeed ?? 42) % 1000) / 1000})`;

    // Staff first, with the ids after the students' (1..N stay free for them).
    await tx`SELECT setval(pg_get_serial_sequence('users', 'id'), ${Math.max(students, 1)}::int)`;
    const [admin] = await tx<{ id: number }[]>`
      INSERT INTO users (email, hashed_password, full_name, role)
      VALUES (${options.adminEmail}, ${adminHash}, 'Staging Admin', 'ADMIN') RETURNING id`;
    const [instructor] = await tx<{ id: number }[]>`
      INSERT INTO users (email, hashed_password, full_name, role)
      VALUES (${instructorEmail}, ${adminHash}, 'Staging Instructor', 'INSTRUCTOR') RETURNING id`;

    // Students in chunks, each chunk set-based: progress can be reported, and
    // memory on both sides stays flat however many students there are.
    let progressRows = 0;
    onProgress?.(0, students);
    for (let lo = 1; lo <= students; lo += SEED_CHUNK) {
      const hi = Math.min(students, lo + SEED_CHUNK - 1);
      await tx`
        INSERT INTO users (id, email, hashed_password, full_name, role)
        SELECT g, 'student' || g || '@academy.example.com', ${studentHash}, 'Student ' || g, 'STUDENT'
        FROM generate_series(${lo}::int, ${hi}::int) AS g`;
      // Each student studies 1-3 specializations; XP is skewed towards the
      // lower levels (random()^2) and reaches past the top threshold.
      const progress = await tx`
        WITH picks AS MATERIALIZED (
          SELECT g AS student_id, 1 + floor(random() * 3)::int AS how_many, floor(random() * 3)::int AS first
          FROM generate_series(${lo}::int, ${hi}::int) AS g
        ), specs AS (
          SELECT s.id, row_number() OVER (ORDER BY s.id)::int - 1 AS ord, max(l.xp_threshold) AS top
          FROM specializations s JOIN specialization_levels l ON l.specialization_id = s.id
          GROUP BY s.id
        )
        INSERT INTO specialization_progress (student_id, specialization_id, total_xp, current_level)
        SELECT r.student_id, r.specialization_id, r.xp, level_on_scale(v.thresholds, v.reached, r.xp)
        FROM (
          -- random() in this target list runs once per row (a volatile subquery is not flattened).
          SELECT p.student_id, s.id AS specialization_id, (1 + floor(random() * random() * s.top * 1.2))::bigint AS xp
          FROM picks p JOIN specs s ON (s.ord - p.first + 3) % 3 < p.how_many
        ) AS r JOIN level_scale v ON v.specialization_id = r.specialization_id`;
      progressRows += progress.count;
      await tx`
        INSERT INTO user_licenses (user_id, specialization_type, current_level, max_achieved_level)
        SELECT student_id, specialization_id, current_level, current_level FROM specialization_progress
        WHERE student_id BETWEEN ${lo} AND ${hi}`;
      await tx`
        INSERT INTO xp_events
          (student_id, specialization_id, xp_change, xp_before, xp_after, level_before, level_after, actor_id, source)
        SELECT student_id, specialization_id, total_xp, 0, total_xp, 1, current_level, ${admin.id}, 'seed'
        FROM specialization_progress WHERE student_id BETWEEN ${lo} AND ${hi}`;
      onProgress?.(hi, students);
    }

    const desynced = desyncRate > 0 ? await breakPairs(tx, desyncRate) : 0;
    return {
      students,
      progressRows,
      desyncedPairs: desynced,
      adminId: admin.id,
      instructorId: instructor.id,
      instructorEmail,
    };
  });
}

/** Breaks a fraction of pairs: half get a license at another level, half lose their license. */
async function breakPairs(tx: Queryable, rate: number): Promise<number> {
  await tx`
    CREATE TEMP TABLE broken ON COMMIT DROP AS
    SELECT id, student_id, specialization_id, current_level, (random() < 0.5) AS drop_license
    FROM specialization_progress WHERE random() < ${rate}`;
  await tx`
    DELETE FROM user_licenses l USING broken b
    WHERE b.drop_license AND l.user_id = b.student_id AND l.specialization_type = b.specialization_id`;
  await tx`
    UPDATE user_licenses l
    SET current_level = CASE WHEN b.current_level > 1 THEN b.current_level - 1 ELSE 2 END,
        max_achieved_level = greatest(l.max_achieved_level, CASE WHEN b.current_level > 1 THEN b.current_level - 1 ELSE 2 END)
    FROM broken b
    WHERE NOT b.drop_license AND l.user_id = b.student_id AND l.specialization_type = b.specialization_id`;
  const [{ count }] = await tx<{ count: number }[]>`SELECT count(*)::int AS count FROM broken`;
  return count;
}

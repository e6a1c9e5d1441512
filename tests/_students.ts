/** Test fixtures: students with known ids, plus staff to act on them. */
import type { TestDatabase } from "./_db.ts";

/** Ids of the staff accounts `addStudents` creates. */
export const ADMIN_ID = 100_001;
export const INSTRUCTOR_ID = 100_002;

/** Creates students 1..n (no progress yet), an admin and an instructor. */
export async function addStudents(db: TestDatabase, n: number): Promise<void> {
  await db.sql`
    INSERT INTO users (id, email, hashed_password, role)
    SELECT g, 'student' || g || '@test.example', 'unused', 'STUDENT' FROM generate_series(1, ${n}::int) AS g`;
  await db.sql`
    INSERT INTO users (id, email, hashed_password, role) VALUES
      (${ADMIN_ID}, 'admin@test.example', 'unused', 'ADMIN'),
      (${INSTRUCTOR_ID}, 'instructor@test.example', 'unused', 'INSTRUCTOR')`;
}

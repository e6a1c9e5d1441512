/** First start on embedded PostgreSQL: demo data and an admin whose password is printed once. */
import type { Sql } from "./db.ts";
import { seed } from "./seed.ts";

/** Demo size: big enough for a lively dashboard, seeded in about a second. */
export const DEMO_STUDENTS = 1000;

function randomPassword(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(12)))).replace(/[+/=]/g, "x");
}

/** Seeds demo data when the database has no users; returns the admin's credentials if it did. */
export async function ensureDemoData(
  sql: Sql,
  env: { adminPassword?: string; studentPassword?: string },
): Promise<{ email: string; password: string; instructorEmail: string; studentPasswordSet: boolean } | null> {
  const [{ empty }] = await sql<{ empty: boolean }[]>`SELECT NOT EXISTS (SELECT 1 FROM users) AS empty`;
  if (!empty) return null;
  const password = env.adminPassword ?? randomPassword();
  const email = "admin@levelguard.local";
  const result = await seed(sql, {
    students: DEMO_STUDENTS,
    desyncRate: 0.005,
    adminEmail: email,
    adminPassword: password,
    studentPassword: env.studentPassword ?? randomPassword(),
  });
  return {
    email,
    password,
    instructorEmail: result.instructorEmail,
    studentPasswordSet: env.studentPassword !== undefined,
  };
}

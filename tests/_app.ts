/** Builds the HTTP app over a test database, as `main.ts` would. */
import { loadConfig } from "../lib/config.ts";
import { readMigrations } from "../lib/migrate.ts";
import { createApp } from "../routes/app.ts";
import type { AppDeps } from "../routes/env.ts";
import type { TestDatabase } from "./_db.ts";

/** The JWT key tests sign with. */
export const TEST_JWT_SECRET = new TextEncoder().encode("test-secret-test-secret-test-secret-0123");

/** An app on `db`; `env` overrides configuration variables (rate limiting is off unless set). */
export async function createTestApp(db: TestDatabase, env: Record<string, string> = {}) {
  const config = loadConfig({ LOG_REQUESTS: "0", RATE_LIMIT_PER_MINUTE: "0", SCAN_ENABLED: "0", ...env });
  const deps: AppDeps = {
    config,
    sql: db.sql,
    migrations: await readMigrations(),
    jwtSecret: TEST_JWT_SECRET,
  };
  return { app: createApp(deps), deps };
}

/** A bearer header for a user id and role, signed with the test key. */
export async function bearer(userId: number, role: "ADMIN" | "INSTRUCTOR" | "STUDENT", ttl = 600) {
  const { issueToken } = await import("../lib/tokens.ts");
  const { token } = await issueToken(TEST_JWT_SECRET, { userId, role }, ttl);
  return { Authorization: `Bearer ${token}` };
}

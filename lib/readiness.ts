/** Readiness: the database answers and every migration is applied. */
import { describe, type Sql } from "./db.ts";
import { type Migration, pendingMigrations } from "./migrate.ts";

/** The outcome of a readiness probe. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** Checks the database within `timeoutMs`. */
export async function checkReadiness(
  sql: Sql,
  migrations: Migration[],
  timeoutMs = 2000,
): Promise<Readiness> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Readiness>((resolve) => {
    timer = setTimeout(
      () => resolve({ ready: false, reason: `database did not answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  const probe = (async (): Promise<Readiness> => {
    try {
      const pending = await pendingMigrations(sql, migrations);
      if (pending.length) return { ready: false, reason: `pending migrations: ${pending.join(", ")}` };
      return { ready: true };
    } catch (err) {
      return { ready: false, reason: `database unreachable: ${describe(err)}` };
    }
  })();
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Readiness: the database answers and every migration is applied. */
import { describe, type Sql } from "./db.ts";
import { log } from "./log.ts";
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

/**
 * `check`, run at most once per `ttlMs` (default 1 s): callers within that time, and those arriving
 * while a check runs, share its result. A load balancer probing every instance, or many probing at
 * once during an outage, costs the database one round trip a second. The reason is logged (never
 * answered to the public) when it changes, and so is the way back to ready.
 */
export function cachedReadiness(
  check: () => Promise<Readiness>,
  { ttlMs = 1000, now = () => performance.now() }: { ttlMs?: number; now?: () => number } = {},
): () => Promise<Readiness> {
  // `settledAt` is null while the check runs: until then every caller waits for that one.
  let last: { settledAt: number | null; result: Promise<Readiness> } | undefined;
  let logged: string | null = null;
  return () => {
    if (last && (last.settledAt === null || now() - last.settledAt < ttlMs)) return last.result;
    const current: { settledAt: number | null; result: Promise<Readiness> } = {
      settledAt: null,
      result: check().then((r) => {
        current.settledAt = now();
        const reason = r.ready ? null : r.reason;
        if (reason !== logged) {
          if (reason) log("warn", "not ready: /readyz answers 503", { reason });
          else if (logged) log("info", "ready again: /readyz answers 200", { was: logged });
          logged = reason;
        }
        return r;
      }),
    };
    last = current;
    return current.result;
  };
}

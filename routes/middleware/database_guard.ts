/**
 * Requests that need the database, bounded by its reachability: refused at
 * once (503) while it is known to be down, and answered at once when it goes
 * down while they wait, instead of each waiting out its own connect timeout
 * in the pool's queue. See lib/db_watch.ts.
 */
import { createMiddleware } from "hono/factory";
import type { DatabaseWatch } from "../../lib/db_watch.ts";
import { DatabaseDown } from "../../lib/errors.ts";
import { DATABASE_RETRY_AFTER_S } from "../problem.ts";

/** Context variables of the guard: a route sets `writeInFlight` while a write may be running. */
export type GuardEnv = { Variables: { writeInFlight?: boolean } };

const UNAVAILABLE = "The database is unavailable; retry shortly";
const WRITE_CUT = "The database became unavailable during the change; it may or may not have been applied. " +
  "Retry with the same Idempotency-Key to apply it exactly once";

/** The guard over `watch`; mount it on the routes that use the database. */
export function databaseGuard(watch: DatabaseWatch) {
  return createMiddleware<GuardEnv>(async (c, next) => {
    if (watch.down) throw new DatabaseDown(UNAVAILABLE, DATABASE_RETRY_AFTER_S);
    const wait = watch.begin();
    const work = next();
    try {
      const outcome = await Promise.race([work, wait.cut]);
      if (outcome === "cut") {
        // The handler goes on in the background; whatever it ends with is not sent.
        work.catch(() => {});
        throw new DatabaseDown(c.get("writeInFlight") ? WRITE_CUT : UNAVAILABLE, DATABASE_RETRY_AFTER_S);
      }
      if (c.error) watch.observe(c.error);
    } finally {
      wait.done();
    }
  });
}

/**
 * The scan lock: one full check at a time across every instance on a
 * database. A session advisory lock on the connection that runs the check, or,
 * through a pooler in transaction mode (no session survives a statement), a
 * transaction-scoped one held in a transaction kept open on a connection of
 * its own for as long as the check runs. Either way it goes when the holder's
 * connection does: a killed instance never leaves it behind.
 */
import type { Sql } from "../db.ts";

/** Advisory lock key every Levelguard instance takes for a full check (fixed, arbitrary). */
export const SCAN_LOCK_KEY = 7_245_005;

/** The scan lock, held on a reserved connection until released. */
export interface ScanLock {
  /** Takes it: at once or not at all (`try`), or waiting for whoever holds it (`wait`). */
  acquire(mode: "try" | "wait"): Promise<boolean>;
  release(): Promise<void>;
}

/** A session lock on `conn` (a direct connection: the session lives as long as the connection). */
export function sessionLock(conn: Sql): ScanLock {
  return {
    async acquire(mode) {
      const [{ locked }] = mode === "wait"
        ? await conn<{ locked: boolean }[]>`SELECT pg_advisory_lock(${SCAN_LOCK_KEY}) IS NOT NULL AS locked`
        : await conn<{ locked: boolean }[]>`SELECT pg_try_advisory_lock(${SCAN_LOCK_KEY}) AS locked`;
      return locked;
    },
    async release() {
      await conn`SELECT pg_advisory_unlock(${SCAN_LOCK_KEY})`;
    },
  };
}

/** A transaction-scoped lock in a transaction left open on `conn` (a pooler pins it to one server). */
export function transactionLock(conn: Sql): ScanLock {
  return {
    async acquire(mode) {
      await conn.unsafe("BEGIN");
      try {
        const [{ locked }] = mode === "wait"
          ? await conn<
            { locked: boolean }[]
          >`SELECT pg_advisory_xact_lock(${SCAN_LOCK_KEY}) IS NOT NULL AS locked`
          : await conn<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${SCAN_LOCK_KEY}) AS locked`;
        if (!locked) await conn.unsafe("ROLLBACK");
        return locked;
      } catch (err) {
        await conn.unsafe("ROLLBACK").catch(() => {});
        throw err;
      }
    },
    async release() {
      await conn.unsafe("COMMIT");
    },
  };
}

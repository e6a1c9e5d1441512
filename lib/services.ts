/**
 * The long-lived objects of a process, built once from its configuration and
 * database: the server (main.ts), the tasks (lib/cli/) and the tests all wire
 * themselves through here, so each gets the same runner for the same pool.
 */
import { Admission } from "./admission.ts";
import type { Config } from "./config.ts";
import type { Sql } from "./db.ts";
import { DatabaseWatch } from "./db_watch.ts";
import { CheckEvents } from "./integrity/events.ts";
import { IntegrityRunner } from "./integrity/runner.ts";
import { StatusCache } from "./integrity/status_cache.ts";
import { type Migration, readMigrations } from "./migrate.ts";

/** What routes, tasks and the schedule are handed. */
export interface Services {
  config: Config;
  sql: Sql;
  /** The one integrity runner of this process (a second caller joins a running check). */
  runner: IntegrityRunner;
  /** The migration files this build ships (readiness compares them with the database). */
  migrations: Migration[];
  /** Whether the database is reachable, as requests see it. */
  watch: DatabaseWatch;
  /** Full checks starting and ending, on this instance or (with LISTEN) any other. */
  events: CheckEvents;
  /** The gate in front of password derivations (logins). */
  passwords: Admission;
  /** The status report, kept in memory between check events. */
  status: StatusCache;
}

/** Builds the services over an open pool; `probe` checks the database on a connection of its own. */
export async function buildServices(
  config: Config,
  db: { sql: Sql; probe: () => Promise<void> },
  migrations?: Migration[],
): Promise<Services> {
  const events = new CheckEvents();
  const runner = new IntegrityRunner(db.sql, {
    logDir: config.LOG_DIR,
    historyDays: config.INTEGRITY_HISTORY_DAYS,
    events,
  });
  return {
    config,
    sql: db.sql,
    runner,
    migrations: migrations ?? await readMigrations(),
    watch: new DatabaseWatch({ probe: db.probe }),
    events,
    status: new StatusCache(db.sql, config, runner, events),
    passwords: new Admission({
      what: "sign-ins",
      concurrency: config.PASSWORD_HASH_CONCURRENCY,
      maxWaitMs: config.PASSWORD_QUEUE_MAX_WAIT_MS,
    }),
  };
}

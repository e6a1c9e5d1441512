/**
 * The long-lived objects of a process, built once from its configuration and
 * database: the server (main.ts), the tasks (tasks/) and the tests all wire
 * themselves through here, so each gets the same runner for the same pool.
 */
import { Accounts, sqlAccountSource } from "./accounts.ts";
import { AdaptiveLimit } from "./adaptive_limit.ts";
import { Admission } from "./admission.ts";
import type { PasswordChecks } from "./auth.ts";
import type { Config } from "./config.ts";
import { AwardBatcher, sqlAwardSender } from "./award_batcher.ts";
import { AutoRollback } from "./canary/auto_rollback.ts";
import { RequestStats } from "./canary/request_stats.ts";
import { RolloutCache } from "./canary/rollout_cache.ts";
import { APPLICATION_NAME, connectionCounts, type Sql } from "./db.ts";
import { DatabaseWatch } from "./db_watch.ts";
import { CheckEvents } from "./integrity/events.ts";
import { IntegrityRunner } from "./integrity/runner.ts";
import { StatusCache } from "./integrity/status_cache.ts";
import { Metrics } from "./metrics.ts";
import { type Migration, readMigrations } from "./migrate.ts";
import { StatusNotifier } from "./notify.ts";
import { PasswordUpgrades } from "./password_upgrade.ts";
import { Replica } from "./replica.ts";
import { VerifiedPasswords } from "./verified_passwords.ts";

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
  /** XP awards, sent alone or together with those that queued for a busy pool (group commit). */
  awards: AwardBatcher;
  /** Full checks starting and ending, on this instance or (with LISTEN) any other. */
  events: CheckEvents;
  /**
   * The accounts tokens speak for, as they are now (started by main.ts with LISTEN where it can run,
   * polling elsewhere; by the test fixture polling).
   */
  accounts: Accounts;
  /** The gate in front of password derivations (logins). */
  passwords: Admission;
  /** How logins check passwords: that gate, the kept successes, the hash upgrades. */
  passwordChecks: PasswordChecks;
  /** The status report, kept in memory between check events. */
  status: StatusCache;
  /** Prometheus metrics of this process. */
  metrics: Metrics;
  /** Status changes to ALERT_WEBHOOK_URLS. */
  notifier: StatusNotifier;
  /** The dashboard's rollout percentage, cached for a second. */
  rollout: RolloutCache;
  /** This process's request figures, flushed to the shared request_stats. */
  requestStats: RequestStats;
  /** CANARY_AUTO_ROLLBACK's judge (called after each check when it is on). */
  autoRollback: AutoRollback;
  /** DATABASE_REPLICA_URL's replica and its state (started by main.ts). */
  replica?: Replica;
  /** Where heavy reads go now: the replica while it is usable, else the primary. */
  reads: () => Sql;
}

/** Builds the services over an open pool; `probe` checks the database on a connection of its own. */
export async function buildServices(
  config: Config,
  db: {
    sql: Sql;
    probe: () => Promise<void>;
    kind?: "server" | "embedded";
    session?: { sql: Sql };
    replica?: Sql;
  },
  migrations?: Migration[],
): Promise<Services> {
  const events = new CheckEvents();
  const replica = db.replica ? new Replica(db.replica, db.sql, config.REPLICA_MAX_LAG_S) : undefined;
  const runner = new IntegrityRunner(db.sql, {
    logDir: config.LOG_DIR,
    historyDays: config.INTEGRITY_HISTORY_DAYS,
    events,
    lockSql: db.session?.sql,
    replica,
    // Called only after start-up, once `metrics` and `notifier` below exist.
    onRecorded: (check) => {
      metrics.recordCheck(check);
      notifier.checkRecorded(check);
      if (config.CANARY_AUTO_ROLLBACK) autoRollback.checkRecorded(check);
    },
    onUnstarted: (trigger) => metrics.recordUnstarted(trigger),
    // Failures without a scan: announced like recorded ones, so a recovery never comes unannounced.
    onClosed: (check) => notifier.checkRecorded(check),
  });
  const watch = new DatabaseWatch({ probe: db.probe });
  const status = new StatusCache(db.sql, config, runner, events);
  // Every core for derivations while the event loop is idle, down to one while it is busy.
  const passwords = new Admission({
    what: "sign-ins",
    concurrency: new AdaptiveLimit({ min: 1, max: config.PASSWORD_HASH_CONCURRENCY }),
    maxWaitMs: config.PASSWORD_QUEUE_MAX_WAIT_MS,
  });
  const rollout = new RolloutCache(db.sql);
  const accounts = new Accounts(sqlAccountSource(db.sql), {
    onError: () => metrics.backgroundErrors.inc({ task: "accounts" }),
  });
  const verified = new VerifiedPasswords(passwords, { ttlMs: config.LOGIN_CACHE_TTL_SECONDS * 1000 });
  // A kept success counts only at the epoch a login reads from `users`; this drops it from memory too.
  accounts.subscribe((change) => verified.forget(change.userId));
  const passwordChecks: PasswordChecks = {
    gate: passwords,
    verified,
    upgrades: new PasswordUpgrades(db.sql, passwords),
  };
  const poolSize = db.sql.options?.max ?? config.DB_POOL_MAX;
  // One call in flight per pool connection: what arrives meanwhile goes with the next call.
  const awards = new AwardBatcher(sqlAwardSender(db.sql), {
    lanes: poolSize,
    onSend: (size) => metrics.xpBatchSize.observe(size),
  });
  const metrics = new Metrics({
    status: () => status.report(),
    passwords,
    verifiedPasswords: verified,
    databasePending: () => watch.waiting,
    replica: replica ? () => replica.state : undefined,
    connections: db.kind !== "embedded" ? () => connectionCounts(db.sql) : undefined,
    poolSize,
    rolloutPercent: () => rollout.percent(),
    activeAdminIds: () => activeAdminIds(db.sql),
    commit: commit(),
  });
  const notifier = new StatusNotifier(db.sql, {
    urls: config.ALERT_WEBHOOK_URLS,
    publicUrl: config.PUBLIC_URL,
    counter: metrics.notifications,
  });
  const requestStats = new RequestStats(db.sql, APPLICATION_NAME);
  const autoRollback = new AutoRollback({
    sql: db.sql,
    soakHours: config.CANARY_STEP_HOURS,
    stats: requestStats,
    rollout,
    notifier,
    publicUrl: config.PUBLIC_URL,
  });
  return {
    config,
    sql: db.sql,
    runner,
    migrations: migrations ?? await readMigrations(),
    watch,
    awards,
    events,
    accounts,
    status,
    passwords,
    passwordChecks,
    metrics,
    notifier,
    rollout,
    requestStats,
    autoRollback,
    replica,
    reads: () => replica?.reader() ?? db.sql,
  };
}

/** The active admins' ids: the canary's population (a handful of rows; metrics cache them). */
async function activeAdminIds(sql: Sql): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`SELECT id FROM users WHERE role = 'ADMIN' AND is_active`;
  return rows.map((r) => r.id);
}

/** The commit this checkout is at (LEVELGUARD_COMMIT, else .git/HEAD), or undefined. */
function commit(): string | undefined {
  const given = Deno.env.get("LEVELGUARD_COMMIT");
  if (given) return given;
  try {
    const root = new URL("../.git/", import.meta.url);
    const head = Deno.readTextFileSync(new URL("HEAD", root)).trim();
    if (!head.startsWith("ref: ")) return head.slice(0, 12);
    return Deno.readTextFileSync(new URL(head.slice(5), root)).trim().slice(0, 12);
  } catch {
    return undefined;
  }
}

/**
 * Runs integrity checks. One full check at a time: in this process a second
 * caller joins the running one; across processes a PostgreSQL advisory lock
 * decides, and a scheduled run that does not get it is recorded as skipped.
 */
import { describe, type Queryable, type Sql } from "../db.ts";
import { Unavailable } from "../errors.ts";
import { errorFields, log } from "../log.ts";
import type { CheckEvents } from "./events.ts";
import { LOG_SAMPLE_LIMIT, pruneCheckLogs, writeCheckLog } from "./log_files.ts";
import { addCounts, emptyCounts, type ScanCounts, scanRange, splitRange, studentIdBounds } from "./scan.ts";
import {
  type CheckRecord,
  closeInterrupted,
  getCheck,
  insertRunning,
  latestFinishedFullCheck,
  pruneHistory,
  recordFailure,
  recordInterrupted,
  recordSkipped,
  recordSuccess,
  recordUnstarted,
  sampleViolations,
  type Trigger,
} from "./store.ts";

/** Advisory lock key every Levelguard instance takes for a full check (fixed, arbitrary). */
export const SCAN_LOCK_KEY = 7_245_005;

/** Ranges of students scanned side by side on their own connections (the machines have 2 cores). */
export const SCAN_PARTITIONS = 2;

/** Where logs go and how long history is kept. */
export interface RunnerOptions {
  logDir: string;
  historyDays: number;
  /** Told when a full check starts and ends (open dashboards). */
  events?: CheckEvents;
  /** Told of every run this runner started, once it is recorded (metrics). */
  onRecorded?: (check: CheckRecord) => void;
  /** Told of a run that could not start (the database was down). */
  onUnstarted?: (trigger: Trigger) => void;
  /** Parallel ranges; default SCAN_PARTITIONS, 1 when the pool is too small. */
  partitions?: number;
}

/** Runs checks against one database; one per process, built where the process is wired. */
export class IntegrityRunner {
  #running = new Map<string, Promise<CheckRecord>>();
  /** The id of the full check this process is scanning, while it scans. */
  #currentId: number | null = null;
  /** Runs that could not even start (the database was down), recorded once it is back. */
  #unstarted: { trigger: Trigger; at: Date; error: string }[] = [];
  readonly partitions: number;

  constructor(readonly sql: Sql, readonly options: RunnerOptions) {
    // The lock holds one connection; each further range needs its own.
    const poolSize = sql.options?.max ?? 1;
    this.partitions = Math.max(1, Math.min(options.partitions ?? SCAN_PARTITIONS, poolSize - 1));
  }

  /** True while this process runs a full check. */
  get fullCheckRunning(): boolean {
    return this.#running.has("full");
  }

  /**
   * Runs a full check (or one student's with `scopeUserId`) and resolves with
   * its record. A caller arriving while the same check runs here joins it; a
   * scheduled run never joins: it records itself as skipped. With `fresh`, a
   * running check is waited for and a new one runs after it (a repair needs a
   * check that sees its writes).
   */
  run(
    trigger: Trigger,
    scopeUserId: number | null = null,
    options: { fresh?: boolean } = {},
  ): Promise<CheckRecord> {
    const key = scopeUserId === null ? "full" : `user:${scopeUserId}`;
    const current = this.#running.get(key);
    if (current) {
      if (options.fresh) return current.catch(() => {}).then(() => this.run(trigger, scopeUserId, options));
      if (trigger === "schedule") {
        return this.#told(recordSkipped(this.sql, trigger, "a check was already running in this process"));
      }
      return current;
    }
    const work = scopeUserId === null
      ? this.#full(trigger, options.fresh ?? false)
      : this.#scoped(trigger, scopeUserId);
    const promise = this.#told(work).finally(() => this.#running.delete(key));
    this.#running.set(key, promise);
    return promise;
  }

  async #told(work: Promise<CheckRecord>): Promise<CheckRecord> {
    const check = await work;
    this.options.onRecorded?.(check);
    return check;
  }

  /**
   * Remembers a run that could not start because the database was unreachable;
   * the next check that reaches it records the run as failed, so the scheduler's
   * success rate shows the outage. Bounded: an outage of days keeps the last 100.
   */
  rememberUnstarted(trigger: Trigger, error: string) {
    this.options.onUnstarted?.(trigger);
    this.#unstarted.push({ trigger, at: new Date(), error });
    if (this.#unstarted.length > 100) this.#unstarted.shift();
  }

  /**
   * For a graceful stop: waits up to `ms` for this process's running checks;
   * a full check still running then is recorded as interrupted. Never throws.
   */
  async stop(ms: number): Promise<void> {
    const running = [...this.#running.values()].map((p) => p.catch(() => {}));
    if (running.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
    const done = await Promise.race([Promise.all(running).then(() => "done" as const), timeout]);
    clearTimeout(timer);
    if (done === "done" || this.#currentId === null) return;
    const id = this.#currentId;
    await recordInterrupted(this.sql, id).then(
      () => log("warn", "integrity check interrupted by shutdown", { check_id: id }),
      (err) => log("warn", "could not record the interrupted check", { check_id: id, ...errorFields(err) }),
    );
  }

  async #full(trigger: Trigger, fresh: boolean): Promise<CheckRecord> {
    const started = performance.now();
    const conn = await this.sql.reserve();
    let check: CheckRecord;
    try {
      // Fresh: wait for another instance's check to end, then scan ourselves.
      const [{ locked }] = fresh
        ? await conn<{ locked: boolean }[]>`SELECT pg_advisory_lock(${SCAN_LOCK_KEY}) IS NOT NULL AS locked`
        : await conn<{ locked: boolean }[]>`SELECT pg_try_advisory_lock(${SCAN_LOCK_KEY}) AS locked`;
      if (!locked) return await this.#otherInstance(conn, trigger);
      try {
        const done = trigger === "schedule" ? await tickHandledBy(conn) : null;
        if (done !== null) {
          // Another instance's clock fired a little earlier and already ran this tick.
          return await recordSkipped(conn, trigger, `this tick was already handled by check ${done}`);
        }
        await closeInterrupted(conn);
        await this.#recordUnstarted(conn);
        const id = await insertRunning(conn, trigger, null);
        this.#currentId = id;
        this.options.events?.emit({ id, outcome: "running", trigger, status: null });
        check = await this.#scanAll(conn, id, started);
      } finally {
        this.#currentId = null;
        await conn`SELECT pg_advisory_unlock(${SCAN_LOCK_KEY})`;
      }
    } finally {
      conn.release();
    }
    await this.#afterCheck(check, true);
    return check;
  }

  async #recordUnstarted(conn: Queryable) {
    while (this.#unstarted.length) {
      const run = this.#unstarted[0];
      await recordUnstarted(conn, run.trigger, run.at, run.error);
      this.#unstarted.shift();
    }
  }

  /** Another instance holds the lock: a scheduled run is skipped, anyone else waits for that check. */
  async #otherInstance(conn: Queryable, trigger: Trigger): Promise<CheckRecord> {
    if (trigger === "schedule" || trigger === "startup") {
      const skipped = await recordSkipped(conn, trigger, "another instance was running a full check");
      log("info", "integrity check skipped", { check_id: skipped.id, trigger });
      return skipped;
    }
    try {
      await conn`SELECT pg_advisory_lock(${SCAN_LOCK_KEY})`;
      await conn`SELECT pg_advisory_unlock(${SCAN_LOCK_KEY})`;
    } catch (err) {
      log("warn", "waiting for another instance's check failed", errorFields(err));
      throw new Unavailable(
        "Another instance is running a full check and it did not finish in time; try again",
      );
    }
    const last = await latestFinishedFullCheck(conn);
    if (!last) throw new Error("the other instance's check left no record");
    return last;
  }

  /** Scans every range (the first on the locked connection, the rest on pool connections) and records the result. */
  async #scanAll(conn: Sql, id: number, started: number): Promise<CheckRecord> {
    const scanStarted = performance.now();
    try {
      const bounds = await studentIdBounds(conn);
      const ranges = bounds ? splitRange(bounds.lo, bounds.hi, this.partitions) : [];
      const results = await Promise.allSettled(
        ranges.map(([lo, hi], i) =>
          i === 0
            ? transaction(conn, (tx) => scanRange(tx, id, lo, hi))
            : this.sql.begin("isolation level repeatable read", (tx) => scanRange(tx, id, lo, hi))
        ),
      );
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      const counts = results.reduce<ScanCounts>(
        (sum, r) => addCounts(sum, (r as PromiseFulfilledResult<ScanCounts>).value),
        emptyCounts(),
      );
      const scanMs = performance.now() - scanStarted;
      await recordSuccess(conn, id, counts, round(performance.now() - started), {
        scan_ms: round(scanMs),
        ranges: ranges.length,
      });
    } catch (err) {
      log("error", "integrity check failed", { check_id: id, ...errorFields(err) });
      // Ranges that did commit leave violations behind; a failed check keeps none.
      await conn`DELETE FROM integrity_violations WHERE check_id = ${id}`.catch(() => {});
      await recordFailure(conn, id, describe(err), round(performance.now() - started));
    }
    return (await getCheck(conn, id))!;
  }

  async #scoped(trigger: Trigger, userId: number): Promise<CheckRecord> {
    const started = performance.now();
    const id = await insertRunning(this.sql, trigger, userId);
    try {
      const counts = await this.sql.begin(
        "isolation level repeatable read",
        (tx) => scanRange(tx, id, userId, userId),
      );
      const ms = round(performance.now() - started);
      await recordSuccess(this.sql, id, counts, ms, { scan_ms: ms, ranges: 1 });
    } catch (err) {
      log("error", "integrity check failed", { check_id: id, ...errorFields(err) });
      await recordFailure(this.sql, id, describe(err), round(performance.now() - started));
    }
    const check = (await getCheck(this.sql, id))!;
    await this.#afterCheck(check, false);
    return check;
  }

  /** Writes the check's JSON log and, after full checks, prunes old history; never fails the check. */
  async #afterCheck(check: CheckRecord, full: boolean) {
    if (full && (check.outcome === "success" || check.outcome === "failure")) {
      this.options.events?.emit({
        id: check.id,
        outcome: check.outcome,
        trigger: check.trigger,
        status: check.status,
      });
    }
    const { logDir, historyDays } = this.options;
    try {
      const sample = check.outcome === "success"
        ? await sampleViolations(this.sql, check.id, LOG_SAMPLE_LIMIT)
        : [];
      await writeCheckLog(logDir, check, [...sample]);
      if (full) {
        const rows = await pruneHistory(this.sql, historyDays);
        const files = await pruneCheckLogs(logDir, historyDays);
        if (rows || files) log("info", "integrity history pruned", { checks: rows, log_files: files });
      }
    } catch (err) {
      // Expected when LOG_DIR is not writable (warned at start): the message, not a stack.
      log("warn", "integrity check log or pruning failed", { check_id: check.id, error: describe(err) });
    }
    log(check.outcome === "failure" ? "warn" : "info", "integrity check finished", {
      check_id: check.id,
      trigger: check.trigger,
      outcome: check.outcome,
      status: check.status,
      consistency_rate: check.consistency_rate,
      violation_count: check.violation_count,
      duration_ms: check.duration_ms,
    });
  }
}

/**
 * Scheduled runs closer together than this belong to one cron tick: instances
 * fire on their own clocks (Deno.cron has minute resolution), so one that
 * fires a moment late must not scan a second time.
 */
export const TICK_WINDOW_SECONDS = 30;

/** The id of a scheduled full check started within the tick window, if any. */
async function tickHandledBy(q: Queryable): Promise<number | null> {
  const [row] = await q<{ id: number }[]>`
    SELECT id FROM integrity_checks
    WHERE trigger = 'schedule' AND scope_user_id IS NULL AND outcome IN ('success', 'failure')
      AND started_at > now() - make_interval(secs => ${TICK_WINDOW_SECONDS})
    ORDER BY id DESC LIMIT 1`;
  return row?.id ?? null;
}

/** Runs `fn` in a REPEATABLE READ transaction on a reserved connection. */
async function transaction<T>(conn: Sql, fn: (tx: Sql) => Promise<T>): Promise<T> {
  await conn.unsafe("BEGIN ISOLATION LEVEL REPEATABLE READ");
  try {
    const result = await fn(conn);
    await conn.unsafe("COMMIT");
    return result;
  } catch (err) {
    await conn.unsafe("ROLLBACK").catch(() => {});
    throw err;
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

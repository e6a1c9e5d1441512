/**
 * Runs integrity checks. One full check at a time: in this process a second
 * caller joins the running one; across processes a PostgreSQL advisory lock
 * decides (./scan_lock.ts), and a scheduled run that does not get it is
 * recorded as skipped. With a replica usable, full checks read there.
 */
import { describe, type Queryable, type Sql } from "../db.ts";
import { Unavailable } from "../errors.ts";
import { errorFields, log } from "../log.ts";
import type { CheckEvents } from "./events.ts";
import { LOG_SAMPLE_LIMIT, pruneCheckLogs, writeCheckLog } from "./log_files.ts";
import { readTransaction, type Replica, replicaLag } from "../replica.ts";
import { type ScanLock, sessionLock, transactionLock } from "./scan_lock.ts";
import {
  addCounts,
  emptyCounts,
  type ScanCounts,
  scanRange,
  scanRangeFromReplica,
  splitRange,
  studentIdBounds,
} from "./scan.ts";
import {
  type CheckRecord,
  closeInterrupted,
  fullCheckFinishedSince,
  getCheck,
  insertRunning,
  markFullChecks,
  pruneHistory,
  type ReadPosition,
  recordFailure,
  recordInterrupted,
  recordSkipped,
  recordSuccess,
  recordUnstarted,
  sampleViolations,
  type Trigger,
} from "./store.ts";
import { Cancellation, inTransaction, ReservedConnection, transaction } from "../connection.ts";

/** Ranges of students scanned side by side on their own connections (the machines have 2 cores). */
export const SCAN_PARTITIONS = 2;

/** How long a stop waits for the server to confirm the cancelled statements of a cut check (a round trip). */
const CANCEL_WAIT_MS = 1000;

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
  /**
   * Told of a full check recorded as failed without a scan's result: a run
   * that could not start (once its row is written, the database back), a check
   * left running by a dead process, or this process's own cut by shutdown.
   * Each row is written by one instance only, so each is told once (notifications).
   */
  onClosed?: (check: CheckRecord) => void;
  /** Parallel ranges; default SCAN_PARTITIONS, 1 when the pool is too small. */
  partitions?: number;
  /** Through a pooler: the client whose open transaction holds the scan lock (see above). */
  lockSql?: Sql;
  /** DATABASE_REPLICA_URL: full checks read there while it is usable (lib/replica.ts). */
  replica?: Replica;
}

/** Runs checks against one database; one per process, built where the process is wired. */
export class IntegrityRunner {
  #running = new Map<string, Promise<CheckRecord>>();
  /** Checks another instance ran that a manual run here waited for: not ours to count or announce. */
  #joined = new WeakSet<CheckRecord>();
  /** The id of the full check this process is scanning, while it scans. */
  #currentId: number | null = null;
  /** Runs that could not even start (the database was down), recorded once it is back. */
  #unstarted: { trigger: Trigger; at: Date; error: string }[] = [];
  /** The scan statements of each running check, for a stop to cancel. */
  #cancellations = new Set<Cancellation>();
  /** Set by a stop that cut a check: its failure is the stop's doing, not an error. */
  #cut = false;
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
    if (!this.#joined.has(check)) this.options.onRecorded?.(check);
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
   * a full check still running then is recorded as interrupted, and the scan
   * statements of every check still running are cancelled on the server (see
   * Cancellation), up to CANCEL_WAIT_MS more. Never throws.
   */
  async stop(ms: number): Promise<void> {
    const running = [...this.#running.values()].map((p) => p.catch(() => {}));
    if (running.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
    const done = await Promise.race([Promise.all(running).then(() => "done" as const), timeout]);
    clearTimeout(timer);
    if (done === "done") return;
    this.#cut = true;
    const id = this.#currentId;
    // Recorded first: the cancelled scan then finds its check closed and leaves it as it is.
    if (id !== null) {
      await recordInterrupted(this.sql, id).then(
        (closed) => {
          log("warn", "integrity check interrupted by shutdown", { check_id: id });
          if (closed) this.options.onClosed?.(closed);
        },
        (err) => log("warn", "could not record the interrupted check", { check_id: id, ...errorFields(err) }),
      );
    }
    await Promise.all([...this.#cancellations].map((c) => c.cancel(CANCEL_WAIT_MS)));
  }

  /** A Cancellation for one run's scan statements, known to `stop` until `forget` runs. */
  #cancellation(): { cancellation: Cancellation; forget: () => void } {
    const cancellation = new Cancellation();
    this.#cancellations.add(cancellation);
    return { cancellation, forget: () => this.#cancellations.delete(cancellation) };
  }

  /** The lock's connection (reserved) and the lock on it; `conn` runs the check. */
  async #lockFor(conn: ReservedConnection): Promise<{ lock: ScanLock; holder: ReservedConnection }> {
    if (!this.options.lockSql) return { lock: sessionLock(conn.sql), holder: conn };
    const own = await ReservedConnection.open(this.options.lockSql);
    return { lock: transactionLock(own.sql), holder: own };
  }

  async #full(trigger: Trigger, fresh: boolean): Promise<CheckRecord> {
    const started = performance.now();
    // A connection the server drops mid-check (a restart, a failover) gets nothing more sent.
    const reserved = await ReservedConnection.open(this.sql);
    const conn = reserved.sql;
    let check: CheckRecord;
    let holder: ReservedConnection | null = null;
    try {
      const { lock, holder: lockHolder } = await this.#lockFor(reserved);
      holder = lockHolder;
      // Fresh: wait for another instance's check to end, then scan ourselves.
      if (!await lock.acquire(fresh ? "wait" : "try")) {
        const theirs = await this.#otherInstance(conn, lock, trigger);
        if (theirs) return theirs;
      }
      try {
        const done = await handledBy(conn, trigger);
        if (done !== null) {
          // Another instance's clock fired a little earlier (or it started a moment before us).
          const what = trigger === "schedule" ? "this tick" : "this start";
          return await recordSkipped(conn, trigger, `${what} was already handled by check ${done}`);
        }
        for (const closed of await closeInterrupted(conn)) this.options.onClosed?.(closed);
        await this.#recordUnstarted(conn);
        const id = await insertRunning(conn, trigger, null);
        this.#currentId = id;
        this.options.events?.emit({ id, outcome: "running", trigger, status: null });
        const { cancellation, forget } = this.#cancellation();
        try {
          check = await this.#scanAll(reserved, id, started, cancellation);
        } finally {
          forget();
        }
      } finally {
        this.#currentId = null;
        // A lock whose connection closed went with it.
        if (holder.alive()) await lock.release();
      }
    } finally {
      if (holder && holder !== reserved) holder.release();
      reserved.release();
    }
    await this.#afterCheck(check, true);
    return check;
  }

  async #recordUnstarted(conn: Queryable) {
    while (this.#unstarted.length) {
      const run = this.#unstarted[0];
      const recorded = await recordUnstarted(conn, run.trigger, run.at, run.error);
      this.#unstarted.shift();
      this.options.onClosed?.(recorded);
    }
  }

  /**
   * Another instance holds the lock: a scheduled run is skipped; anyone else
   * waits for that check and gets it, or, when that instance died before
   * finishing it, resolves with null still holding the lock, to run its own.
   */
  async #otherInstance(conn: Queryable, lock: ScanLock, trigger: Trigger): Promise<CheckRecord | null> {
    if (trigger === "schedule" || trigger === "startup") {
      const skipped = await recordSkipped(conn, trigger, "another instance was running a full check");
      log("info", "integrity check skipped", { check_id: skipped.id, trigger });
      return skipped;
    }
    const mark = await markFullChecks(conn);
    try {
      await lock.acquire("wait");
    } catch (err) {
      log("warn", "waiting for another instance's check failed", errorFields(err));
      throw new Unavailable(
        "Another instance is running a full check and it did not finish in time; try again",
      );
    }
    const theirs = await fullCheckFinishedSince(conn, mark);
    if (!theirs) return null;
    await lock.release();
    this.#joined.add(theirs);
    return theirs;
  }

  /**
   * Reads the whole data set in one REPEATABLE READ snapshot on the replica (its ranges side by
   * side, the snapshot exported to the other transactions) and streams the
   * violations to the primary; returns null (nothing left behind) when the replica fails, so the
   * caller scans the primary instead.
   */
  async #scanReplica(
    reserved: ReservedConnection,
    id: number,
    cancellation: Cancellation,
  ): Promise<{ counts: ScanCounts; at: ReadPosition; ms: number; ranges: number } | null> {
    const replica = this.options.replica!;
    const conn = reserved.sql;
    const scanStarted = performance.now();
    try {
      const lagS = (await replicaLag(replica.sql)).lagS ?? 0;
      // Not begin(): the replica may die mid-read (see lib/connection.ts).
      const watch = <S extends Sql>(sql: S) => cancellation.watch(sql);
      return await readTransaction(replica.sql, async (rtx) => {
        // The other ranges import this transaction's snapshot: one consistent view, read in parallel.
        const [{ lsn, snapshot }] = await watch(rtx)<{ lsn: string; snapshot: string }[]>`
          SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_export_snapshot() AS snapshot`;
        const bounds = await studentIdBounds(watch(rtx));
        const ranges = bounds ? splitRange(bounds.lo, bounds.hi, this.partitions) : [];
        const results = await Promise.allSettled(
          ranges.map(([lo, hi], i) =>
            i === 0 ? scanRangeFromReplica(watch(rtx), watch(conn), id, lo, hi) : readTransaction(
              replica.sql,
              async (tx) => {
                await tx.unsafe(`SET TRANSACTION SNAPSHOT '${snapshot.replace(/'/g, "")}'`);
                return await transaction(
                  this.sql,
                  (ptx) => scanRangeFromReplica(watch(tx), watch(ptx), id, lo, hi),
                );
              },
            )
          ),
        );
        // allSettled: every range has stopped writing before a failure is handled.
        const failed = results.find((r) => r.status === "rejected");
        if (failed) throw failed.reason;
        const counts = results.reduce<ScanCounts>(
          (sum, r) => addCounts(sum, (r as PromiseFulfilledResult<ScanCounts>).value),
          emptyCounts(),
        );
        return {
          counts,
          at: { from: "replica" as const, lsn, lagS },
          ms: performance.now() - scanStarted,
          ranges: ranges.length,
        };
      });
    } catch (err) {
      // The primary's connection closed, not the replica, or a stop cut the check: it fails (recorded elsewhere).
      if (this.#cut || !await reserved.settle(err)) throw err;
      replica.failed(err);
      log("warn", "integrity check: the replica failed, scanning the primary instead", {
        check_id: id,
        ...errorFields(err),
      });
      await conn`DELETE FROM integrity_violations WHERE check_id = ${id}`;
      return null;
    }
  }

  /** Scans every range (the first on the locked connection, the rest on pool connections) and records the result. */
  async #scanAll(
    reserved: ReservedConnection,
    id: number,
    started: number,
    cancellation: Cancellation,
  ): Promise<CheckRecord> {
    const conn = reserved.sql;
    // Where the outcome is written: the check's connection, or the pool once that one closed.
    let recorder: Sql = conn;
    const scanStarted = performance.now();
    try {
      const onReplica = this.options.replica?.state.usable
        ? await this.#scanReplica(reserved, id, cancellation)
        : null;
      if (onReplica) {
        await recordSuccess(conn, id, onReplica.counts, round(performance.now() - started), {
          scan_ms: round(onReplica.ms),
          ranges: onReplica.ranges,
        }, onReplica.at);
        return (await getCheck(conn, id))!;
      }
      // The scan's statements go through the cancellation; recording the outcome does not.
      const watch = <S extends Sql>(sql: S) => cancellation.watch(sql);
      const bounds = await studentIdBounds(watch(conn));
      const ranges = bounds ? splitRange(bounds.lo, bounds.hi, this.partitions) : [];
      const mode = "isolation level repeatable read";
      const results = await Promise.allSettled(
        ranges.map(([lo, hi], i) =>
          i === 0
            ? inTransaction(reserved, mode, (tx) => scanRange(watch(tx), id, lo, hi))
            : transaction(this.sql, mode, (tx) => scanRange(watch(tx), id, lo, hi))
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
      if (this.#cut) log("warn", "integrity check cut by shutdown", { check_id: id, error: describe(err) });
      else log("error", "integrity check failed", { check_id: id, ...errorFields(err) });
      if (!await reserved.settle(err)) recorder = this.sql;
      // Ranges that did commit leave violations behind; a failed check keeps none.
      await recorder`DELETE FROM integrity_violations WHERE check_id = ${id}`.catch(() => {});
      await recordFailure(recorder, id, describe(err), round(performance.now() - started));
    }
    return (await getCheck(recorder, id))!;
  }

  async #scoped(trigger: Trigger, userId: number): Promise<CheckRecord> {
    const started = performance.now();
    const id = await insertRunning(this.sql, trigger, userId);
    const { cancellation, forget } = this.#cancellation();
    try {
      const counts = await transaction(
        this.sql,
        "isolation level repeatable read",
        (tx) => scanRange(cancellation.watch(tx), id, userId, userId),
      );
      const ms = round(performance.now() - started);
      await recordSuccess(this.sql, id, counts, ms, { scan_ms: ms, ranges: 1 });
    } catch (err) {
      if (this.#cut) log("warn", "integrity check cut by shutdown", { check_id: id, error: describe(err) });
      else log("error", "integrity check failed", { check_id: id, ...errorFields(err) });
      await recordFailure(this.sql, id, describe(err), round(performance.now() - started));
    } finally {
      forget();
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

/**
 * Instances started together (a deploy, a restart of all of them) run one
 * startup check: one that starts this soon after another's startup check skips.
 */
export const STARTUP_WINDOW_SECONDS = 10;

/**
 * For a scheduled or startup run: the id of a full check of the same trigger
 * another instance finished within its window (the tick or the start it
 * belongs to), if any; null for other triggers.
 */
async function handledBy(q: Queryable, trigger: Trigger): Promise<number | null> {
  const window = trigger === "schedule"
    ? TICK_WINDOW_SECONDS
    : trigger === "startup"
    ? STARTUP_WINDOW_SECONDS
    : null;
  if (window === null) return null;
  const [row] = await q<{ id: number }[]>`
    SELECT id FROM integrity_checks
    WHERE trigger = ${trigger} AND scope_user_id IS NULL AND outcome IN ('success', 'failure')
      AND started_at > now() - make_interval(secs => ${window})
    ORDER BY id DESC LIMIT 1`;
  return row?.id ?? null;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

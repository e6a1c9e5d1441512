/**
 * The streaming replica (DATABASE_REPLICA_URL) for heavy reads: the full
 * scan's read phase, violation pages, history windows, the CSV export. Its
 * state is measured every couple of seconds: while it is unreachable, not in
 * recovery, or more than REPLICA_MAX_LAG_S behind, reads go to the primary,
 * and /readyz and the metrics say so. A read that finds the replica gone
 * before the next measurement runs again on the primary (see `reader()`).
 */
import type { ReservedSql } from "postgres";
import { transaction } from "./connection.ts";
import { describe, type Sql } from "./db.ts";
import { errorFields, log } from "./log.ts";
import { unavailability } from "./retry.ts";

/** What the replica looks like now. */
export interface ReplicaState {
  /** Reads go there. */
  usable: boolean;
  /** Seconds behind the primary (0 when it has replayed all it received), null when unknown. */
  lagS: number | null;
  /** Why reads are on the primary, when they are. */
  reason: string | null;
}

const CHECK_EVERY_MS = 2000;

/** A replica's reason as the public may read it (/readyz): without the database's error text. */
export function publicReplicaReason(reason: string | null): string | null {
  return reason?.startsWith("unreachable") ? "unreachable" : reason;
}

/**
 * How far behind `sql` (a standby) is: 0 while it streams from the primary and has replayed all it
 * received; otherwise the age of the last transaction it replayed (a replica cut off from its
 * primary falls behind without knowing it); null when it has replayed none yet.
 */
export async function replicaLag(
  sql: Sql,
): Promise<{ standby: boolean; streaming: boolean; lagS: number | null; lsn: string | null }> {
  const [row] = await sql<{ standby: boolean; streaming: boolean; lag: number | null; lsn: string | null }[]>`
    SELECT pg_is_in_recovery() AS standby,
      coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) AS streaming,
      pg_last_wal_replay_lsn()::text AS lsn,
      CASE WHEN coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false)
             AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
           ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS lag`;
  return {
    standby: row.standby,
    streaming: row.streaming,
    lagS: row.lag === null ? null : Math.max(0, Number(row.lag)),
    lsn: row.lsn,
  };
}

/** The replica and where reads go. */
export class Replica {
  #state: ReplicaState = { usable: false, lagS: null, reason: "not checked yet" };
  #timer: ReturnType<typeof setInterval> | undefined;
  #checking: Promise<ReplicaState> | null = null;
  readonly #fallback: Sql;

  constructor(readonly sql: Sql, private readonly primary: Sql, private readonly maxLagS: number) {
    this.#fallback = withFallback(sql, primary, {
      usable: () => this.#state.usable,
      down: (err) => this.failed(err),
    });
  }

  /** The state measured last. */
  get state(): ReplicaState {
    return this.#state;
  }

  /**
   * Where heavy reads go now: the replica when usable, else the primary. A query on the replica
   * that finds it unreachable marks it failed and runs once more on the primary, so pages and
   * exports answer at once rather than failing until the next measurement (up to 2 s).
   */
  reader(): Sql {
    return this.#state.usable ? this.#fallback : this.primary;
  }

  /** Measures again (one measurement at a time). */
  check(): Promise<ReplicaState> {
    return this.#checking ??= this.#measure().finally(() => this.#checking = null);
  }

  /** A read on the replica failed: reads go to the primary until the next measurement says otherwise. */
  failed(err: unknown): void {
    this.#set({ usable: false, lagS: null, reason: `unreachable: ${describe(err)}` });
  }

  async #measure(): Promise<ReplicaState> {
    try {
      const { standby, streaming, lagS } = await withinMs(replicaLag(this.sql), 1000);
      this.#set(
        !standby
          ? { usable: false, lagS: null, reason: "not a standby (pg_is_in_recovery() is false)" }
          : lagS === null
          ? { usable: false, lagS: null, reason: "not streaming from the primary yet" }
          : lagS > this.maxLagS
          ? {
            usable: false,
            lagS,
            reason: `${Math.round(lagS)} s behind (REPLICA_MAX_LAG_S=${this.maxLagS})` +
              (streaming ? "" : ", not streaming from the primary"),
          }
          : { usable: true, lagS, reason: null },
      );
    } catch (err) {
      this.#set({ usable: false, lagS: null, reason: `unreachable: ${describe(err)}` });
    }
    return this.#state;
  }

  #measured = false;

  /** Logs the first measurement and every switch between the replica and the primary. */
  #set(next: ReplicaState) {
    const first = !this.#measured;
    this.#measured = true;
    if (first || next.usable !== this.#state.usable) {
      if (next.usable) log("info", "replica in use for heavy reads", { lag_s: next.lagS });
      else log("warn", "replica not used: reads go to the primary", { reason: next.reason });
    }
    this.#state = next;
  }

  /** Measures now and every couple of seconds (the timer never keeps the process alive). */
  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(
      () => this.check().catch((err) => log("warn", "replica check", errorFields(err))),
      CHECK_EVERY_MS,
    );
    Deno.unrefTimer(this.#timer);
  }

  /** Stops measuring. */
  stop(): void {
    clearInterval(this.#timer);
  }
}

/** `fn` in a REPEATABLE READ READ ONLY transaction on one connection of `sql` (the replica may die mid-read: lib/connection.ts). */
export function readTransaction<T>(sql: Sql, fn: (tx: ReservedSql) => Promise<T>): Promise<T> {
  return transaction(sql, "isolation level repeatable read read only", fn);
}

/** The replica cannot serve: unreachable, shutting down, refusing us (not a query's own error). */
function replicaDown(err: unknown): boolean {
  return unavailability(err) === "down";
}

/** The parts of a postgres.js query object the fallback reaches into. */
interface PendingQuery extends Promise<unknown> {
  isRaw?: boolean | string;
  cursor(rows?: number | ((rows: unknown[]) => unknown), fn?: (rows: unknown[]) => unknown): unknown;
}

/**
 * `replica`, except that a tagged-template query failing because the replica is down calls
 * `down` and is run again, once, on `primary` (the same strings and values: fragments are plain
 * query objects that any client can interpolate). Awaiting the query and iterating its
 * `cursor()` fall back; a cursor falls back only before its first batch, since rows already
 * handed out cannot be taken back. Once the replica is not `usable`, the next queries of a
 * caller still holding this client go straight to the primary. Everything else (helpers,
 * `unsafe`, `begin`) is the replica's own, unchanged.
 */
function withFallback(
  replica: Sql,
  primary: Sql,
  { usable, down }: { usable: () => boolean; down: (err: unknown) => void },
): Sql {
  return new Proxy(replica, {
    apply(target, self, args: unknown[]) {
      const strings = args[0] as { raw?: unknown } | undefined;
      // Not a tagged template: an identifier or a helper, which runs nothing by itself.
      if (!Array.isArray(strings?.raw)) return Reflect.apply(target, self, args);
      if (!usable()) return Reflect.apply(primary, undefined, args);
      const query = Reflect.apply(target, self, args) as PendingQuery;
      const again = (): PendingQuery => {
        const retry = Reflect.apply(primary, undefined, args) as PendingQuery;
        retry.isRaw = query.isRaw;
        return retry;
      };
      return fallBackOnDown(query, again, down);
    },
  });
}

/** Patches `query`'s own `then` and `cursor` (it stays the same object, usable as a fragment). */
function fallBackOnDown(query: PendingQuery, again: () => PendingQuery, onDown: (err: unknown) => void) {
  const then = query.then;
  const cursor = query.cursor;
  let settled: Promise<unknown> | undefined;
  // catch and finally call then: one patch covers the three.
  query.then = ((ok, bad) => {
    settled ??= then.call(query, undefined, (err) => {
      if (!replicaDown(err)) throw err;
      onDown(err);
      return again();
    });
    return settled.then(ok, bad);
  }) as typeof query.then;
  query.cursor = (rows, fn) => {
    if (typeof rows === "function" || fn) return cursor.call(query, rows, fn);
    const first = cursor.call(query, rows) as AsyncIterable<unknown>;
    return {
      [Symbol.asyncIterator]() {
        let it = first[Symbol.asyncIterator]();
        let started = false;
        return {
          async next() {
            try {
              return await it.next();
            } catch (err) {
              if (started || !replicaDown(err)) throw err;
              onDown(err);
              it = (again().cursor(rows) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
              return await it.next();
            } finally {
              started = true;
            }
          },
          return: () => it.return?.() ?? Promise.resolve({ done: true, value: undefined }),
        };
      },
    };
  };
  return query;
}

async function withinMs<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reserved connections and transactions that survive the server dropping
 * them. postgres.js 3.4.9 writes to a connection the server has closed from a
 * timer, where the TypeError cannot be caught and ends the process
 * (porsager/postgres#1208): `begin()` does it with its ROLLBACK after a
 * restart, a failover or `pg_terminate_backend`, and so would our own
 * ROLLBACK, unlock or release. So a reserved connection here knows whether it
 * is still open, and nothing is sent on one that is not; it is not handed back
 * either (the pool has already moved it to its closed ones).
 */
import type { ReservedSql, Sql } from "postgres";
import type { Queryable } from "./db.ts";
import { unavailability } from "./retry.ts";

// How long a connection-class failure may take to show as the connection's close: the server's
// FATAL error arrives just before the socket closes.
const CLOSE_SETTLE_MS = 200;

/** The part of postgres.js's connection object read here: `reserved` is null once it closed. */
interface ConnectionState {
  reserved: unknown;
}

/** One connection of a pool, held until `release()`. */
export class ReservedConnection {
  #released = false;

  private constructor(readonly sql: ReservedSql, readonly state: ConnectionState | null) {}

  /**
   * Reserves a connection of `pool` and runs `first` on it (default `SELECT 1`): the statement
   * names the connection it ran on (postgres.js's `onexecute`, as its own `begin()` uses it).
   */
  static async open(pool: Sql, first = "SELECT 1"): Promise<ReservedConnection> {
    const sql = await pool.reserve();
    let state: ConnectionState | null = null;
    const options = { onexecute: (c: ConnectionState) => (state = c, true) };
    try {
      await sql.unsafe(first, [], options as never);
    } catch (err) {
      const reserved = new ReservedConnection(sql, state);
      await reserved.settle(err);
      reserved.release();
      throw err;
    }
    return new ReservedConnection(sql, state);
  }

  /** False once the server closed it: then nothing may be sent on it. */
  alive(): boolean {
    return !this.#released && (this.state === null || this.state.reserved !== null);
  }

  /** After `err`: waits for a connection-class failure to close it, then says whether it is alive. */
  async settle(err: unknown): Promise<boolean> {
    if (unavailability(err) !== "down") return this.alive();
    for (let waited = 0; this.alive() && waited < CLOSE_SETTLE_MS; waited += 10) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.alive();
  }

  /** Hands it back to the pool, unless it closed. */
  release(): void {
    if (this.alive()) this.sql.release();
    this.#released = true;
  }
}

/** Runs `fn` in a transaction on `conn`: BEGIN `mode`, then COMMIT, or ROLLBACK when it is still open. */
export async function inTransaction<T>(
  conn: ReservedConnection,
  mode: string,
  fn: (tx: ReservedSql) => Promise<T>,
): Promise<T> {
  await conn.sql.unsafe(`BEGIN ${words(mode)}`);
  return await committed(conn, fn);
}

/** Runs `fn` in a transaction on a connection of `pool` (what `pool.begin()` does, safely). */
export function transaction<T>(pool: Sql, fn: (tx: ReservedSql) => Promise<T>): Promise<T>;
/** The same, with `mode` after BEGIN (e.g. `isolation level repeatable read read only`). */
export function transaction<T>(pool: Sql, mode: string, fn: (tx: ReservedSql) => Promise<T>): Promise<T>;
export async function transaction<T>(
  pool: Sql,
  modeOrFn: string | ((tx: ReservedSql) => Promise<T>),
  maybeFn?: (tx: ReservedSql) => Promise<T>,
): Promise<T> {
  const [mode, fn] = typeof modeOrFn === "string" ? [modeOrFn, maybeFn!] : ["", modeOrFn];
  const conn = await ReservedConnection.open(pool, `BEGIN ${words(mode)}`);
  try {
    return await committed(conn, fn);
  } finally {
    conn.release();
  }
}

async function committed<T>(conn: ReservedConnection, fn: (tx: ReservedSql) => Promise<T>): Promise<T> {
  try {
    const result = await fn(conn.sql);
    await conn.sql.unsafe("COMMIT");
    return result;
  } catch (err) {
    if (await conn.settle(err)) await conn.sql.unsafe("ROLLBACK").catch(() => {});
    throw err;
  }
}

// Only words: the mode is written into the statement, as begin() does.
function words(mode: string): string {
  return mode.replace(/[^a-z ]/gi, "");
}

/** What a statement sent through a `Cancellation` is refused with once it was cancelled. */
export class StatementCancelled extends Error {
  constructor() {
    super("cancelled: the process is stopping");
    this.name = "StatementCancelled";
  }
}

/** The part of a postgres.js query read here (3.4.9: `active` while the server runs it). */
interface RunningQuery {
  active?: boolean;
  canceller?: ((query: RunningQuery) => Promise<void> | void) | null;
  cancel(): unknown;
  then: PromiseLike<unknown>["then"];
}

/**
 * Statements to stop on the server when the work they belong to is cut short
 * (a shutdown ending a check). Exiting closes their connections, but PostgreSQL
 * notices a client is gone only when it next writes to it: a scan, or its wait
 * on a lock, would stay `active` in pg_stat_activity, holding its snapshot,
 * until it finished (or statement_timeout, when there is one). `watch(sql)`
 * gives a `sql` whose statements `cancel()` stops: the running ones are
 * cancelled (a CancelRequest on a connection of its own, which needs no free
 * slot in the pool), later ones are refused with StatementCancelled.
 */
export class Cancellation {
  #sent = new Set<RunningQuery>();
  #cancelled = false;

  /** `sql`, with every statement it sends known to this cancellation. */
  watch<S extends Queryable | ReservedSql>(sql: S): S {
    const track = <T>(query: T): T => {
      if (this.#cancelled) throw new StatementCancelled();
      this.#sent.add(query as RunningQuery);
      return query;
    };
    return new Proxy(sql, {
      apply: (target, self, args) => track(Reflect.apply(target as never, self, args)),
      get: (target, key, receiver) =>
        key === "unsafe"
          ? (...args: unknown[]) => track((target.unsafe as (...a: unknown[]) => unknown)(...args))
          : Reflect.get(target, key, receiver),
    });
  }

  /** Cancels the statements running now and refuses later ones; waits up to `ms` for the server to stop them. */
  async cancel(ms: number): Promise<void> {
    this.#cancelled = true;
    const running = [...this.#sent].filter((q) => q.active === true);
    this.#sent.clear();
    for (const query of running) {
      // postgres.js's cancel() drops the promise of its CancelRequest: a refused one (the server
      // gone too) would be an unhandled rejection, which ends the process. Its canceller is that
      // promise; cancel() itself where a later version has none.
      const canceller = query.canceller;
      if (typeof canceller === "function") {
        query.canceller = null;
        Promise.resolve(canceller(query)).catch(() => {});
      } else {
        query.cancel();
      }
    }
    if (running.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(running.map((q) => Promise.resolve(q))),
      new Promise((r) => timer = setTimeout(r, ms)),
    ]);
    clearTimeout(timer);
  }
}

/**
 * The streaming replica (DATABASE_REPLICA_URL) for heavy reads: the full
 * scan's read phase, violation pages, history windows, the CSV export. Its
 * state is measured every couple of seconds: while it is unreachable, not in
 * recovery, or more than REPLICA_MAX_LAG_S behind, reads go to the primary,
 * and /readyz and the metrics say so.
 */
import { describe, type Sql } from "./db.ts";
import { errorFields, log } from "./log.ts";

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

  constructor(readonly sql: Sql, private readonly primary: Sql, private readonly maxLagS: number) {}

  /** The state measured last. */
  get state(): ReplicaState {
    return this.#state;
  }

  /** Where heavy reads go now: the replica when usable, else the primary. */
  reader(): Sql {
    return this.#state.usable ? this.sql : this.primary;
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

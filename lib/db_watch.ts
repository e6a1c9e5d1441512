/**
 * Whether the database is reachable, as the requests see it. The first
 * connection-level failure marks it down: requests waiting on it are told
 * at once (instead of each waiting for its own connect timeout behind the
 * others in the pool's queue), new ones are refused without queueing, and a
 * probe on a connection of its own marks it up again as soon as it answers.
 * A request waiting longer than `suspectAfterMs` makes the watch probe too:
 * when the server stops while the pool's connections are idle, the requests'
 * queries can sit in the client's queue through its reconnect attempts without
 * any of them failing, and only a probe says the database is gone.
 */
import postgres from "postgres";
import { firstAnswer } from "./handshake.ts";
import { log } from "./log.ts";
import { unavailability } from "./retry.ts";

/** What a request holds while it waits on the database: `cut` settles when the database goes down. */
export interface Wait {
  cut: Promise<"cut">;
  done(): void;
}

/** Options of the watch. */
export interface WatchOptions {
  /** How to reach the database for the probe (the pool's URL and options). */
  probe: () => Promise<void>;
  /** Pause between probes while down. */
  probeIntervalMs?: number;
  /** A request waiting this long makes the watch probe the database (default 500 ms). */
  suspectAfterMs?: number;
}

/** The reachability of one database, shared by the requests of a process. */
export class DatabaseWatch {
  #down: { since: number; reason: string } | null = null;
  /** Each waiting request's `cut`, and when it began. */
  #waits = new Map<() => void, number>();
  #probing = false;
  #suspecting = false;
  #stopped = false;
  /**
   * Looks for long waits while there are any (one timer for all requests, not one each). It stops
   * itself at a tick that finds none: started and cleared per request it cost ~13 µs of a status
   * read's ~60 (bench:status, where each request is the only one waiting for a moment).
   */
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly options: WatchOptions) {}

  /** Null while reachable; when and why it was marked down otherwise. */
  get down(): { since: number; reason: string } | null {
    return this.#down;
  }

  /** Requests waiting on the database now. */
  get waiting(): number {
    return this.#waits.size;
  }

  /** Registers a request that is about to use the database. */
  begin(): Wait {
    let cut!: () => void;
    const promise = new Promise<"cut">((resolve) => cut = () => resolve("cut"));
    this.#waits.set(cut, performance.now());
    if (!this.#sweep && !this.#stopped) {
      this.#sweep = setInterval(() => this.#lookForLongWaits(), this.#suspectAfterMs / 2);
      Deno.unrefTimer(this.#sweep);
    }
    return {
      cut: promise,
      done: () => void this.#waits.delete(cut),
    };
  }

  get #suspectAfterMs(): number {
    return this.options.suspectAfterMs ?? 500;
  }

  #stopSweep() {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** A request has waited long: one probe at a time says whether the database is still there. */
  async #lookForLongWaits() {
    if (this.#waits.size === 0) {
      this.#stopSweep();
      return;
    }
    if (this.#down || this.#suspecting) return;
    // Entries keep their insertion order: the first is the oldest.
    const oldest = this.#waits.values().next().value!;
    if (performance.now() - oldest < this.#suspectAfterMs) return;
    this.#suspecting = true;
    try {
      await this.options.probe();
    } catch (err) {
      // Only an unreachable database cuts the waits: a busy one (no free connection) is waited for.
      this.observe(err);
    } finally {
      this.#suspecting = false;
    }
  }

  /** Looks at an error a query raised; marks the database down when it says it is unreachable. */
  observe(err: unknown): void {
    // A domain error keeps the database's error as its cause.
    const cause = (err as { cause?: unknown } | null)?.cause;
    if (this.#down || this.#stopped) return;
    if (unavailability(err) !== "down" && unavailability(cause) !== "down") return;
    const reason = err instanceof Error ? err.message : String(err);
    this.#down = { since: Date.now(), reason };
    log("warn", "database unreachable: refusing requests that need it until it answers again", { reason });
    for (const cut of this.#waits.keys()) cut();
    this.#waits.clear();
    this.#stopSweep();
    this.#probe();
  }

  /** Stops probing (at shutdown). */
  stop() {
    this.#stopped = true;
    this.#stopSweep();
  }

  async #probe() {
    if (this.#probing) return;
    this.#probing = true;
    const interval = this.options.probeIntervalMs ?? 1000;
    while (this.#down && !this.#stopped) {
      try {
        await this.options.probe();
        const downFor = Date.now() - this.#down.since;
        this.#down = null;
        log("info", "database reachable again", { down_ms: downFor });
      } catch {
        await new Promise((r) => setTimeout(r, interval));
      }
    }
    this.#probing = false;
  }
}

/**
 * A probe that opens a connection of its own (the pool's may be stuck) and runs `SELECT 1`, within
 * the connect timeout whatever the peer does (lib/handshake.ts): a probe that never settled kept
 * the watch from ever probing again, and requests waited on a dead pool.
 */
export function connectionProbe(url: string, connectTimeoutS: number, ssl?: false): () => Promise<void> {
  return async () => {
    const sql = postgres(url, { max: 1, connect_timeout: connectTimeoutS, onnotice: () => {}, ssl });
    let answered = false;
    try {
      await firstAnswer(sql, url, connectTimeoutS);
      answered = true;
    } finally {
      // A client still reconnecting to a peer that is not PostgreSQL never ends gracefully.
      await sql.end({ timeout: answered ? 1 : 0 }).catch(() => {});
    }
  };
}

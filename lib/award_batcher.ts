/**
 * Group commit for XP awards (smart batching). At most `lanes` calls to the
 * database are in flight at once, one per pool connection.
 *
 * - An award that arrives while no award is in flight is sent at once, alone
 *   (`apply_xp`): an idle service adds no latency.
 * - An award that arrives while others are in flight waits for the end of the
 *   current event-loop turn (`setImmediate`, a few µs), so that the awards the
 *   same turn brings go together, in one call (`apply_xp_batch`) on a free lane.
 * - When every lane is busy, the awards queue, and each lane that comes back
 *   takes all of them (up to `maxBatch`) as one call.
 *
 * One round trip, one transaction and one commit then serve the whole group,
 * and the busier the service, the larger the groups: the per-call work of both
 * processes is shared by more awards exactly when the CPU is short. Sending
 * each award that finds a lane free at once instead (measured, bench:update,
 * 64 connections, pool 10) sent most calls with one award: 3,000-3,800
 * awards/s, p99 50-68 ms, 250-265 µs of PostgreSQL CPU per award, against
 * 4,400-5,200 awards/s, p99 29-34 ms, 170-190 µs when the turn's awards go
 * together. Each award keeps its own answer (lib/coupling.ts, `applyXpChanges`).
 */
import { setImmediate } from "node:timers";
import {
  type AppliedChange,
  applyXpChange,
  applyXpChanges,
  type Settled,
  type XpChange,
} from "./coupling.ts";
import type { Sql } from "./db.ts";
import { outsideRequestScope } from "./log.ts";

/** How awards reach the database: one alone, or several in one call (each answered on its own). */
export interface AwardSender {
  one(change: XpChange): Promise<AppliedChange>;
  many(changes: XpChange[]): Promise<Settled[]>;
}

/** The database's `apply_xp` and `apply_xp_batch` on `sql` (lib/coupling.ts). */
export function sqlAwardSender(sql: Sql): AwardSender {
  return { one: (change) => applyXpChange(sql, change), many: (changes) => applyXpChanges(sql, changes) };
}

/**
 * Awards per call at most: bounds how long one transaction holds its rows and how large one
 * statement grows after a stall. Under bench:update (64 connections) calls carry ~15 on average.
 */
export const MAX_BATCH = 32;

interface Waiting {
  change: XpChange;
  resolve: (value: AppliedChange) => void;
  reject: (error: unknown) => void;
}

/** Options of the batcher. */
export interface AwardBatcherOptions {
  /** Calls in flight at most: the pool's connections. */
  lanes: number;
  /** Awards per call at most (default MAX_BATCH). */
  maxBatch?: number;
  /** Told the size of every call sent (1 for an award sent alone). */
  onSend?: (size: number) => void;
}

/** The process's one way of applying awards: see the module's comment. */
export class AwardBatcher {
  #queue: Waiting[] = [];
  #inFlight = 0;
  #scheduled = false;
  readonly #lanes: number;
  readonly #maxBatch: number;

  constructor(private readonly sender: AwardSender, private readonly options: AwardBatcherOptions) {
    this.#lanes = Math.max(1, options.lanes);
    this.#maxBatch = Math.max(1, options.maxBatch ?? MAX_BATCH);
  }

  /** Awards waiting for a lane. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Applies one award, alone or with the others waiting; answers as `applyXpChange` would. */
  apply(change: XpChange): Promise<AppliedChange> {
    if (this.#inFlight === 0) {
      this.#inFlight++;
      this.options.onSend?.(1);
      return this.sender.one(change).finally(() => this.#landed());
    }
    const answer = new Promise<AppliedChange>((resolve, reject) =>
      this.#queue.push({ change, resolve, reject })
    );
    if (!this.#scheduled && this.#inFlight < this.#lanes) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#send();
      });
    }
    return answer;
  }

  #landed() {
    this.#inFlight--;
    this.#send();
  }

  /** Sends what waits, as calls of up to maxBatch awards, while lanes are free. */
  #send() {
    while (this.#inFlight < this.#lanes && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight++;
      this.options.onSend?.(batch.length);
      // Started from whichever request's turn or call came first: its log lines must not name that request.
      outsideRequestScope(() => this.#call(batch)).finally(() => this.#landed());
    }
  }

  async #call(batch: Waiting[]): Promise<void> {
    try {
      if (batch.length === 1) {
        const [{ change, resolve, reject }] = batch;
        await this.sender.one(change).then(resolve, reject);
        return;
      }
      const answers = await this.sender.many(batch.map((w) => w.change));
      answers.forEach((answer, i) =>
        answer.ok ? batch[i].resolve(answer.value) : batch[i].reject(answer.error)
      );
    } catch (err) {
      // Unexpected (applyXpChanges answers every change): nobody is left waiting (settled ones stay so).
      for (const waiting of batch) waiting.reject(err);
    }
  }
}

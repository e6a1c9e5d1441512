/**
 * Group commit for XP awards (smart batching). At most `lanes` calls to the
 * database are in flight at once, one per pool connection. An award that finds
 * a lane free is sent at once, alone (`apply_xp`): no added latency when the
 * service is idle. Awards that arrive while every lane is busy wait in a queue,
 * and each lane that comes back takes all of them (up to `maxBatch`) as one
 * call (`apply_xp_batch`): one round trip, one transaction, one commit for
 * the lot. The busier the service, the larger the batches, so the round trip,
 * the commit and the per-call work of both processes are shared by more awards
 * exactly when the CPU is short. Each award keeps its own answer
 * (lib/coupling.ts, `applyXpChanges`).
 */
import {
  type AppliedChange,
  applyXpChange,
  applyXpChanges,
  type Settled,
  type XpChange,
} from "./coupling.ts";
import type { Sql } from "./db.ts";

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
 * Awards per call at most. Measured with bench:update (64 connections, pool 10) the batches
 * average ~6; the cap only bounds how long one transaction holds its rows after a stall.
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
    if (this.#inFlight < this.#lanes) {
      this.#inFlight++;
      this.options.onSend?.(1);
      return this.sender.one(change).finally(() => this.#landed());
    }
    return new Promise((resolve, reject) => this.#queue.push({ change, resolve, reject }));
  }

  #landed() {
    this.#inFlight--;
    while (this.#inFlight < this.#lanes && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight++;
      this.options.onSend?.(batch.length);
      this.#send(batch).finally(() => this.#landed());
    }
  }

  async #send(batch: Waiting[]): Promise<void> {
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

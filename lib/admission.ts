/**
 * Admission control for expensive work (password derivation): at most
 * `concurrency` at once (a number, or a limit that follows the event loop:
 * lib/adaptive_limit.ts), the rest wait in a queue in arrival order, and a
 * caller whose wait would exceed `maxWaitMs` is refused at once (load
 * shedding) with how long to wait, instead of queueing without end. A login
 * storm then slows logins, not every other request. The bound is as long as a
 * client waits for an answer (30 s by default): a client that never retries
 * is better served by a login that waits than by one that fails.
 */
import type { ConcurrencyLimit } from "./adaptive_limit.ts";
import { Unavailable } from "./errors.ts";

/** Options of an admission gate. */
export interface AdmissionOptions {
  /** Jobs at once: fixed, or a limit that changes (it is asked whenever a slot could be given). */
  concurrency: number | ConcurrencyLimit;
  maxWaitMs: number;
  /** What is refused, for the message ("sign-ins"). */
  what: string;
  /** A first guess of one job's duration, refined as jobs finish. */
  expectedMs?: number;
}

/** A gate in front of one kind of expensive job. */
export class Admission {
  #running = 0;
  #queue: (() => void)[] = [];
  #avgMs: number;
  #shed = 0;
  readonly #limit: ConcurrencyLimit | null;

  constructor(readonly options: AdmissionOptions) {
    this.#avgMs = options.expectedMs ?? 250;
    const { concurrency } = options;
    this.#limit = typeof concurrency === "number" ? null : concurrency;
    this.#limit?.onRaise(() => this.#pump());
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Jobs running. */
  get running(): number {
    return this.#running;
  }

  /** Jobs refused so far. */
  get shed(): number {
    return this.#shed;
  }

  /** Jobs allowed at once now. */
  get concurrency(): number {
    const { concurrency } = this.options;
    return Math.max(1, typeof concurrency === "number" ? concurrency : concurrency.current);
  }

  /** Runs `job` when a slot is free; throws Unavailable when the wait would be too long. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.#running < this.concurrency && this.#queue.length === 0) {
      this.#running++;
      this.#limit?.busy(true);
    } else {
      const waitMs = ((this.#queue.length + 1) * this.#avgMs) / this.concurrency;
      if (waitMs > this.options.maxWaitMs) {
        this.#shed++;
        const seconds = Math.max(1, Math.ceil(waitMs / 1000));
        throw new Unavailable(`Too many ${this.options.what} at once; retry in ${seconds} s`, seconds);
      }
      // #pump counts the slot when it hands it over: no newcomer can overtake the queue.
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
    const started = performance.now();
    try {
      return await job();
    } finally {
      // A moving average of the job's duration sizes the queue's expected wait.
      this.#avgMs = this.#avgMs * 0.8 + (performance.now() - started) * 0.2;
      this.#running--;
      this.#pump();
    }
  }

  /** Hands free slots to the waiting jobs, first come first served. */
  #pump() {
    while (this.#queue.length > 0 && this.#running < this.concurrency) {
      this.#running++;
      this.#queue.shift()!();
    }
    if (this.#running === 0 && this.#queue.length === 0) this.#limit?.busy(false);
  }
}

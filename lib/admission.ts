/**
 * Admission control for expensive work (password derivation): at most
 * `concurrency` at once, the rest wait in a queue, and a caller whose wait
 * would exceed `maxWaitMs` is refused at once (load shedding) with how long
 * to wait, instead of queueing without end. A login storm then slows logins,
 * not every other request: the cores the derivations do not get stay free for
 * the event loop and the database.
 */
import { Unavailable } from "./errors.ts";

/** Options of an admission gate. */
export interface AdmissionOptions {
  concurrency: number;
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

  constructor(readonly options: AdmissionOptions) {
    this.#avgMs = options.expectedMs ?? 50;
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

  /** Runs `job` when a slot is free; throws Unavailable when the wait would be too long. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.#running >= this.options.concurrency) {
      const waitMs = ((this.#queue.length + 1) * this.#avgMs) / this.options.concurrency;
      if (waitMs > this.options.maxWaitMs) {
        this.#shed++;
        const seconds = Math.max(1, Math.ceil(waitMs / 1000));
        throw new Unavailable(`Too many ${this.options.what} at once; retry in ${seconds} s`, seconds);
      }
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    } else {
      this.#running++;
    }
    const started = performance.now();
    try {
      return await job();
    } finally {
      // A moving average of the job's duration sizes the queue's expected wait.
      this.#avgMs = this.#avgMs * 0.8 + (performance.now() - started) * 0.2;
      const next = this.#queue.shift();
      // The slot goes straight to the next waiter, so no newcomer can overtake the queue.
      if (next) next();
      else this.#running--;
    }
  }
}

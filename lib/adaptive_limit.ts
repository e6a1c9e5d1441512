/**
 * How many password derivations may run at once, now (adaptive concurrency):
 * every core while the event loop is idle, one fewer each time it is late,
 * down to `min`. The loop is late when requests keep it busy or when the
 * derivations leave it no core; either way the derivations give a core back,
 * and take it again after a quiet window. Measured on 2 cores: with the loop
 * idle, 10 ms timers fire 0.1–0.3 ms late (p50) and 3–4 ms (p99) whether 0, 1,
 * 2 or 3 derivations run (the kernel runs a woken thread promptly), so an idle
 * service lends both cores to a login storm of distinct accounts; a busy loop
 * shows it within one timer.
 *
 * The timer runs only while the gate has work (`busy(true)` … `busy(false)`).
 */

/** A gate's concurrency that may change while it runs (lib/admission.ts). */
export interface ConcurrencyLimit {
  /** Slots now (at least 1). */
  readonly current: number;
  /** The gate got work (true) or has none left (false). */
  busy(busy: boolean): void;
  /** Called whenever `current` rises, so the gate starts waiting jobs. */
  onRaise(fn: () => void): void;
}

/** Options of `AdaptiveLimit`. */
export interface AdaptiveLimitOptions {
  min: number;
  max: number;
  /** A timer this late (ms) takes one slot away (default 10). */
  highLagMs?: number;
  /** A window whose timers were all less late than this (ms) gives one back (default 5). */
  lowLagMs?: number;
  /** At most one change per window (ms, default 250). */
  windowMs?: number;
}

const SAMPLE_MS = 10;

/** The loop's lateness decides the slots (see the module's comment). */
export class AdaptiveLimit implements ConcurrencyLimit {
  readonly #min: number;
  readonly #max: number;
  readonly #high: number;
  readonly #low: number;
  readonly #window: number;
  #current: number;
  #raised: () => void = () => {};
  #timer: ReturnType<typeof setInterval> | undefined;
  #expected = 0;
  #windowStart = 0;
  #windowMaxLag = 0;
  #changedAt = -Infinity;

  constructor(options: AdaptiveLimitOptions) {
    this.#max = Math.max(1, options.max);
    this.#min = Math.min(this.#max, Math.max(1, options.min));
    this.#high = options.highLagMs ?? 10;
    this.#low = options.lowLagMs ?? 5;
    this.#window = options.windowMs ?? 250;
    this.#current = this.#max;
  }

  /** Slots now. */
  get current(): number {
    return this.#current;
  }

  /** Registers the gate's wake-up. */
  onRaise(fn: () => void): void {
    this.#raised = fn;
  }

  /** Starts or stops watching the loop. */
  busy(busy: boolean): void {
    if (busy && this.#timer === undefined && this.#min < this.#max) {
      const now = performance.now();
      this.#expected = now + SAMPLE_MS;
      this.#windowStart = now;
      this.#windowMaxLag = 0;
      this.#timer = setInterval(() => {
        const at = performance.now();
        this.observe(Math.max(0, at - this.#expected), at);
        this.#expected = at + SAMPLE_MS;
      }, SAMPLE_MS);
      // Never keeps a process (a task, a test) alive.
      Deno.unrefTimer(this.#timer);
    } else if (!busy && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** One sample: the loop ran `lagMs` late at `at` (performance.now()). */
  observe(lagMs: number, at: number): void {
    this.#windowMaxLag = Math.max(this.#windowMaxLag, lagMs);
    // One change per window: a change shows in the loop only once running derivations end.
    const settled = at - this.#changedAt >= this.#window;
    if (lagMs >= this.#high && this.#current > this.#min && settled) {
      // At once: requests are waiting now.
      this.#current--;
      this.#changedAt = at;
      this.#restart(at);
    } else if (at - this.#windowStart >= this.#window) {
      const quiet = this.#windowMaxLag < this.#low;
      this.#restart(at);
      if (quiet && this.#current < this.#max && settled) {
        this.#current++;
        this.#changedAt = at;
        this.#raised();
      }
    }
  }

  #restart(at: number) {
    this.#windowStart = at;
    this.#windowMaxLag = 0;
  }
}

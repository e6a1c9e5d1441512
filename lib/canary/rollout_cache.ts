/**
 * The rollout percentage as requests need it: read from the database at most
 * once a second per process (other instances' changes show within a second;
 * this instance's own at once).
 */
import type { Queryable } from "../db.ts";
import { rolloutPercent } from "./rollout.ts";

const TTL_MS = 1000;

/** This process's view of the rollout percentage. */
export class RolloutCache {
  #value: number | null = null;
  #at = 0;
  #reading: Promise<number> | null = null;

  constructor(private readonly q: Queryable) {}

  /** The percentage, read again when older than a second. */
  async percent(): Promise<number> {
    if (this.#value !== null && performance.now() - this.#at < TTL_MS) return this.#value;
    return await this.#read();
  }

  /** The last value read, without waiting (a read starts when it is stale); null before the first. */
  peek(): number | null {
    if (performance.now() - this.#at >= TTL_MS) this.#read().catch(() => {});
    return this.#value;
  }

  /** Records a change this process made. */
  set(value: number): void {
    this.#value = value;
    this.#at = performance.now();
  }

  #read(): Promise<number> {
    return this.#reading ??= rolloutPercent(this.q).then((value) => {
      this.set(value);
      return value;
    }).finally(() => this.#reading = null);
  }
}

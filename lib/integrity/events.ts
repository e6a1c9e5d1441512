/**
 * Check events for open dashboards: a full check started or ended, on any
 * instance. With a PostgreSQL server they arrive through LISTEN/NOTIFY (the
 * trigger of migration 0007), so a check run by another instance reaches this
 * one within a second; the embedded database serves one connection, so there
 * this process's own runner reports its checks directly.
 */
import type { Sql } from "../db.ts";
import { errorFields, log } from "../log.ts";

/** The channel migration 0007 notifies. */
export const CHECK_CHANNEL = "levelguard_checks";

/** A full check changed: it started (`running`) or ended. */
export interface CheckEvent {
  id: number;
  outcome: "running" | "success" | "failure";
  trigger: string;
  status: string | null;
}

/** Fan-out of check events to the subscribers of this process. */
export class CheckEvents {
  #subscribers = new Set<(event: CheckEvent) => void>();
  #recent: string[] = [];
  #listening = false;

  /** True when events from other instances arrive (LISTEN is running). */
  get listening(): boolean {
    return this.#listening;
  }

  /** Starts LISTEN on a connection of its own; false (logged) where it is not possible. */
  async listen(sql: Sql): Promise<boolean> {
    try {
      await sql.listen(CHECK_CHANNEL, (payload) => {
        try {
          this.emit(JSON.parse(payload));
        } catch { /* not ours */ }
      });
      this.#listening = true;
    } catch (err) {
      log("warn", "live check events unavailable; dashboards fall back to polling", errorFields(err));
    }
    return this.#listening;
  }

  /** Delivers an event once (the local runner and NOTIFY may both report it). */
  emit(event: CheckEvent): void {
    const key = `${event.id}:${event.outcome}`;
    if (this.#recent.includes(key)) return;
    this.#recent.push(key);
    if (this.#recent.length > 64) this.#recent.shift();
    for (const fn of this.#subscribers) fn(event);
  }

  /** Calls `fn` for every event until the returned function is called. */
  subscribe(fn: (event: CheckEvent) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }

  /** How many subscribers are attached (open dashboard streams). */
  get size(): number {
    return this.#subscribers.size;
  }
}

/**
 * GET /health/status from memory. The report changes only when a full check
 * starts or ends, so it is read from the database once and kept until a check
 * event (on any instance, through LISTEN/NOTIFY) says it changed, with a short
 * expiry as the fallback where events may be missed. Concurrent requests share
 * one read. `next_check_at` is computed per request (it moves with the clock).
 */
import type { Config } from "../config.ts";
import type { Queryable } from "../db.ts";
import { nextCronTime } from "./cron_next.ts";
import type { CheckEvents } from "./events.ts";
import { type HealthReport, healthReport } from "./report.ts";
import type { IntegrityRunner } from "./runner.ts";

/** How long a report is kept when check events arrive from every instance (LISTEN works). */
export const STATUS_TTL_LISTENING_MS = 30_000;
/** How long otherwise (events of this process only). */
export const STATUS_TTL_MS = 1_000;

/** The cached status report of one database. */
export class StatusCache {
  #report: { value: HealthReport; body: string; at: number } | null = null;
  #reading: Promise<HealthReport> | null = null;
  #generation = 0;
  /** The next scheduled check, kept until it is reached (computing it cost ~4 µs of a ~55 µs read). */
  #next: { iso: string | null; until: number } | null = null;

  constructor(
    private readonly q: Queryable,
    private readonly config: Pick<Config, "SCAN_ENABLED" | "SCAN_CRON">,
    private readonly runner: IntegrityRunner,
    private readonly events: CheckEvents,
  ) {
    events.subscribe(() => this.invalidate());
  }

  /** Forgets the kept report (a check started or ended). */
  invalidate() {
    this.#generation++;
    this.#report = null;
  }

  /** The report, from memory when it is fresh. */
  async report(): Promise<HealthReport> {
    await this.#fresh();
    return this.#report!.value;
  }

  /** The report as JSON text, from memory when it is fresh. */
  async json(): Promise<string> {
    await this.#fresh();
    const report = this.#report!;
    // next_check_at moves with the clock; patch it in rather than re-encoding the report.
    const next = this.#nextCheckAt();
    return next === report.value.next_check_at
      ? report.body
      : JSON.stringify({ ...report.value, next_check_at: next });
  }

  /** `next_check_at` now: the first firing after now stays the same until it is reached. */
  #nextCheckAt(): string | null {
    if (!this.config.SCAN_ENABLED) return null;
    const now = Date.now();
    if (!this.#next || now >= this.#next.until) {
      const next = nextCronTime(this.config.SCAN_CRON, new Date(now));
      // An expression that never fires within a year is asked again a minute later.
      this.#next = { iso: next?.toISOString() ?? null, until: next?.getTime() ?? now + 60_000 };
    }
    return this.#next.iso;
  }

  async #fresh(): Promise<void> {
    const ttl = this.events.listening ? STATUS_TTL_LISTENING_MS : STATUS_TTL_MS;
    const kept = this.#report;
    if (!kept || performance.now() - kept.at > ttl) await this.#read();
  }

  async #read(): Promise<void> {
    if (!this.#reading) {
      const generation = this.#generation;
      this.#reading = healthReport(this.q, this.config, this.runner.fullCheckRunning).finally(() =>
        this.#reading = null
      );
      const value = await this.#reading;
      // An event that arrived during the read makes this result stale: the next request reads again.
      if (generation === this.#generation) {
        this.#report = { value, body: JSON.stringify(value), at: performance.now() };
      } else {
        this.#report = { value, body: JSON.stringify(value), at: -Infinity };
      }
      return;
    }
    await this.#reading;
  }
}

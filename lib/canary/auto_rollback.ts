/**
 * CANARY_AUTO_ROLLBACK: after every full check this instance records, the
 * canary is judged; a `rollback` verdict sets the rollout to 0, audits why,
 * and announces it through the webhooks. The change is compare-and-set
 * (only from a percentage above 0), so with several instances it happens,
 * and is announced, once.
 */
import type { Sql } from "../db.ts";
import { errorFields, log } from "../log.ts";
import type { StatusNotifier } from "../notify.ts";
import type { CheckRecord } from "../integrity/store.ts";
import { canaryReport } from "./verdict.ts";
import type { RequestStats } from "./request_stats.ts";
import { type RolloutChange, setRollout } from "./rollout.ts";
import type { RolloutCache } from "./rollout_cache.ts";

/** What the automatic rollback needs. */
export interface AutoRollbackDeps {
  sql: Sql;
  soakHours: number;
  stats: RequestStats;
  rollout: RolloutCache;
  notifier: StatusNotifier;
  publicUrl?: string;
}

/** Judges the canary after a check and rolls back when it says so. */
export class AutoRollback {
  #pending = Promise.resolve<RolloutChange | null>(null);

  constructor(private readonly deps: AutoRollbackDeps) {}

  /** Told of each check this instance recorded; evaluates in the background, one at a time. */
  checkRecorded(check: CheckRecord): void {
    if (check.scope_user_id !== null || check.outcome === "running" || check.outcome === "skipped") return;
    this.#pending = this.#pending.then(() => this.evaluate()).catch((err) => {
      log("error", "canary evaluation failed", errorFields(err));
      return null;
    });
  }

  /** The latest evaluation's change (tests wait on it). */
  settled(): Promise<RolloutChange | null> {
    return this.#pending;
  }

  /** Judges now; returns the rollback it made, or null. */
  async evaluate(): Promise<RolloutChange | null> {
    const { sql, stats, rollout } = this.deps;
    if (await rollout.percent() === 0) return null;
    // This instance's latest requests count too.
    await stats.flush().catch(() => {});
    const report = await canaryReport(sql, { window: "1h", soakHours: this.deps.soakHours });
    if (report.verdict !== "rollback") return null;
    const reason = `automatic rollback: ${report.reasons.join("; ")}`;
    const change = await setRollout(sql, {
      percent: 0,
      reason,
      source: "auto-rollback",
      actorId: null,
      actor: "auto-rollback",
      onlyFrom: (current) => current > 0,
    });
    if (!change) return null;
    rollout.set(0);
    log("warn", "canary rolled back", { from: change.from, reason });
    const dashboard = this.deps.publicUrl ? `${this.deps.publicUrl}/admin/health` : null;
    this.deps.notifier.announce({
      text:
        `Levelguard rollback: the health dashboard went from ${change.from} % of admins to 0 %. ${reason}.` +
        (dashboard ? ` <${dashboard}|Open Levelguard>` : ""),
      event: "levelguard.rollback",
      rollout_before: change.from,
      rollout_after: 0,
      reason,
      verdict: report.verdict,
      metrics: report.metrics,
      at: change.at,
      dashboard_url: dashboard,
    });
    return change;
  }
}

/** The integrity schedule: `Deno.cron` on SCAN_CRON, plus one check at startup. */
import type { Config } from "../config.ts";
import type { Sql } from "../db.ts";
import { errorFields, log } from "../log.ts";
import { runnerFor } from "./runner.ts";
import type { CheckRecord, Trigger } from "./store.ts";

/** The cron job's name (one per deployment). */
export const CRON_NAME = "levelguard-integrity-scan";

/** `Deno.cron`'s shape, injectable so tests can fire ticks themselves. */
export type CronFn = (name: string, schedule: string, handler: () => Promise<void>) => unknown;

/** Runs one scheduled check; never throws (a tick must not kill the process). */
export async function runScheduled(
  sql: Sql,
  config: Pick<Config, "LOG_DIR" | "INTEGRITY_HISTORY_DAYS">,
  trigger: Trigger = "schedule",
): Promise<CheckRecord | null> {
  try {
    return await runnerFor(sql, config).run(trigger);
  } catch (err) {
    // Reaching here means the run could not even be recorded (e.g. the database is down).
    log("error", "scheduled integrity check could not run", { trigger, ...errorFields(err) });
    return null;
  }
}

/**
 * Registers the cron job and starts a startup check. Call at the top level of
 * main.ts (Deno.cron must be registered there), only when SCAN_ENABLED.
 */
export function scheduleIntegrityScan(config: Config, sql: Sql, cron: CronFn = Deno.cron) {
  const tick = async () => {
    await runScheduled(sql, config, "schedule");
  };
  cron(CRON_NAME, config.SCAN_CRON, tick);
  log("info", "integrity scan scheduled", { cron: config.SCAN_CRON });
  // So the status is known right after a deploy, not only after the first tick.
  const startup = runScheduled(sql, config, "startup");
  return { tick, startup };
}

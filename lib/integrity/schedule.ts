/** The integrity schedule: `Deno.cron` on SCAN_CRON, plus one check at startup. */
import { describe } from "../db.ts";
import { errorFields, log } from "../log.ts";
import type { IntegrityRunner } from "./runner.ts";
import type { CheckRecord, Trigger } from "./store.ts";

/** The cron job's name (one per deployment). */
export const CRON_NAME = "levelguard-integrity-scan";

/** `Deno.cron`'s shape, injectable so tests can fire ticks themselves. */
export type CronFn = (
  name: string,
  schedule: string,
  options: { signal?: AbortSignal },
  handler: () => Promise<void>,
) => unknown;

/** Runs one scheduled check; never throws (a tick must not kill the process). */
export async function runScheduled(
  runner: IntegrityRunner,
  trigger: Trigger = "schedule",
): Promise<CheckRecord | null> {
  try {
    return await runner.run(trigger);
  } catch (err) {
    // The run could not even be recorded (the database is down): it is, once the database is back.
    log("error", "scheduled integrity check could not run", { trigger, ...errorFields(err) });
    runner.rememberUnstarted(trigger, describe(err));
    return null;
  }
}

/**
 * Registers the cron job and starts a startup check. Call at the top level of
 * main.ts (Deno.cron must be registered there), only when SCAN_ENABLED.
 * Aborting `signal` unregisters the job.
 */
export function scheduleIntegrityScan(
  runner: IntegrityRunner,
  cronExpression: string,
  options: { cron?: CronFn; signal?: AbortSignal } = {},
) {
  const cron = options.cron ?? Deno.cron;
  const tick = async () => {
    await runScheduled(runner, "schedule");
  };
  cron(CRON_NAME, cronExpression, { signal: options.signal }, tick);
  log("info", "integrity scan scheduled", { cron: cronExpression });
  // So the status is known right after a deploy, not only after the first tick.
  const startup = runScheduled(runner, "startup");
  return { tick, startup };
}

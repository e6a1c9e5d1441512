/** `deno task scan`: one full integrity check; prints a summary; exit code 2 when critical, 1 when it failed. */
import { setQuiet } from "../log.ts";
import { runTask } from "./_run.ts";

/** Exit code when the check finds the data critical (for cron jobs and pipelines). */
export const EXIT_CRITICAL = 2;

await runTask("scan", async ({ services }) => {
  setQuiet(true);
  const check = await services.runner.run("cli");
  if (check.outcome !== "success") {
    console.error(`scan: check ${check.id} ${check.outcome}: ${check.error ?? "no detail"}`);
    return 1;
  }
  const rate = ((check.consistency_rate ?? 1) * 100).toFixed(3);
  const kinds = Object.entries(check.counts_by_kind ?? {}).filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`).join(", ");
  console.log(
    `check ${check.id}: ${check.status} - ${rate} % consistent (${check.consistent_pairs} of ${check.pairs_checked} pairs), ` +
      `${check.violation_count} violations${kinds ? ` (${kinds})` : ""}, ${check.duration_ms} ms`,
  );
  return check.status === "critical" ? EXIT_CRITICAL : 0;
});

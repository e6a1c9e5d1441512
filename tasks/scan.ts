/** `deno task scan`: one full integrity check; prints a summary; exit code 3 when critical, 1 when it failed. */
import { z } from "zod";
import { setQuiet } from "../lib/log.ts";
import { runTask } from "./_run.ts";

/** Exit code when the check finds the data critical (for cron jobs and pipelines); 2 is bad usage. */
export const EXIT_CRITICAL = 3;

await runTask(
  {
    name: "scan",
    summary: "Runs one full integrity check, records it like any other and prints a summary line.",
    options: {},
    schema: z.object({ _: z.array(z.string()) }),
    notes: [
      "exit codes: 0 healthy or degraded, 1 the check failed, 2 bad usage, 3 critical",
      "Database: DATABASE_URL, or the embedded one under DATA_DIR (default ./data).",
    ],
  },
  {
    database: "migrated",
    whileServerRuns: "run the check through the running server (POST /api/v1/health/check-now)",
  },
  async ({ services }) => {
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
  },
);

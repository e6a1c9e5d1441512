/** `deno task bench`: every benchmark in turn, each in its own process (their figures go to docs/benchmarks.md). */
import { z } from "zod";
import { argsOrExit } from "../../lib/args.ts";

const BENCHMARKS = [
  "update.ts",
  "status.ts",
  "login_storm.ts",
  "scan.ts",
  "dashboard.ts",
  "metrics.ts",
  "staging_export.ts",
  "scale.ts",
];

argsOrExit({
  name: "bench",
  summary: `Runs the benchmarks one after another: ${BENCHMARKS.join(", ")} (each also has its own task).`,
  options: {},
  schema: z.object({ _: z.array(z.string()) }),
  notes: ["Needs PostgreSQL's binaries (initdb, pgbench) and wrk. Takes several minutes."],
});

for (const file of BENCHMARKS) {
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(file, import.meta.url).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) Deno.exit(status.code);
}

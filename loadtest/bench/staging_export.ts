/**
 * Staging export benchmark: `deno run -A loadtest/bench/staging_export.ts [--students N] [--limit N]`.
 * Seeds N students into a throwaway cluster (normal durability), then runs
 * `deno task staging:export` as a subprocess into a fresh migrated database of
 * the same cluster, once with --limit and once with everything, and reports
 * its wall time and peak RSS (VmHWM from /proc, sampled while it runs).
 * Prints Markdown.
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit, positiveInt } from "../../lib/args.ts";
import { clientOptions } from "../../lib/db.ts";
import { seededCluster } from "../../tests/support/seeded_cluster.ts";
import { spawnScript } from "../../tests/support/server_process.ts";
import { migrate } from "../../lib/migrate.ts";
import { memoryMb } from "./_setup.ts";

const { students, limit } = argsOrExit({
  name: "bench:staging-export",
  summary: "Time and peak memory of deno task staging:export, with a limit and with everything.",
  options: {
    students: { type: "string", value: "N", help: "students seeded into the source (default 100000)" },
    limit: { type: "string", value: "N", help: "the --limit of the first run (default 10000)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    students: positiveInt().default(100_000),
    limit: positiveInt().default(10_000),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb)."],
});

console.error(`seeding ${students.toLocaleString("en")} students ...`);
const seeded = await seededCluster({ students, desyncRate: 0.001 });
if (!seeded) throw new Error("PostgreSQL binaries not found (Debian: apt-get install postgresql)");
const rows: string[] = [];
try {
  const admin = postgres(seeded.url, { max: 1, onnotice: () => {} });
  for (const [i, runLimit] of [limit, null].entries()) {
    const name = `staging_${i}`;
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const to = seeded.url.replace(/\/postgres$/, `/${name}`);
    const target = postgres(to, clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 0 }, 1));
    await migrate(target);
    await target.end();

    const args = runLimit === null ? [] : ["--limit", String(runLimit)];
    const started = performance.now();
    // Connection strings from the environment, as the task wants them (never on the command line).
    const child = spawnScript("tasks/staging_export.ts", args, {
      STAGING_FROM_URL: seeded.url,
      STAGING_TO_URL: to,
      STAGING_PASSWORD: "bench-staging-password",
    });
    let peak = 0;
    const timer = setInterval(() => {
      try {
        peak = Math.max(peak, memoryMb(child.pid).peak);
      } catch { /* exited */ }
    }, 20);
    const out = await child.output();
    clearInterval(timer);
    const seconds = (performance.now() - started) / 1000;
    const dec = new TextDecoder();
    const stdout = dec.decode(out.stdout).trim();
    if (!out.success) throw new Error(`staging:export failed: ${dec.decode(out.stderr)}`);
    console.error(stdout);
    const copied =
      /copied ([\d,]+) users .*?([\d,]+) pairs, ([\d,]+) licenses, ([\d,]+) ledger rows in ([\d.]+) s/
        .exec(stdout)!;
    const total = [copied[1], copied[2], copied[3], copied[4]].reduce(
      (sum, n) => sum + Number(n.replaceAll(",", "")),
      0,
    );
    rows.push(
      `| ${runLimit === null ? "all" : runLimit.toLocaleString("en")} | ${copied[1]} | ${copied[2]} | ${
        copied[4]
      } | ` +
        `${total.toLocaleString("en")} | ${copied[5]} s | ${seconds.toFixed(2)} s | ` +
        `${Math.round(total / Number(copied[5])).toLocaleString("en")} | ${peak.toFixed(0)} MB |`,
    );
  }
  await admin.end();
} finally {
  await seeded.stop();
}
console.log(
  `\nstaging:export of ${students.toLocaleString("en")} seeded students (throwaway cluster, same host)\n`,
);
console.log(
  "| --limit | users | pairs | ledger rows | rows in all | export time | wall (process) | rows/s | peak RSS |\n" +
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
);
console.log(rows.join("\n"));

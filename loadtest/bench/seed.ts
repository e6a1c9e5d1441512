/**
 * Seed benchmark: `deno run -A loadtest/bench/seed.ts [--sizes 10000,100000]`.
 * Starts a throwaway PostgreSQL cluster with normal durability, then times
 * `seed` into a fresh database per size.
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit, numberList } from "../../lib/args.ts";
import { clientOptions } from "../../lib/db.ts";
import { migrate } from "../../lib/migrate.ts";
import { seed } from "../../lib/seed.ts";
import { findPgBin, startCluster } from "../../tests/support/cluster.ts";

const { sizes } = argsOrExit({
  name: "bench:seed",
  summary: "Seed time at each size, on a throwaway cluster.",
  options: { sizes: { type: "string", value: "N,N", help: "student counts (default 10000,100000)" } },
  schema: z.object({ _: z.array(z.string()), sizes: numberList("student counts").default([10000, 100000]) }),
  notes: ["Needs PostgreSQL's binaries (initdb)."],
});
const bin = await findPgBin();
if (!bin) throw new Error("PostgreSQL binaries not found");
const cluster = await startCluster(bin);
const rows: string[] = [];
try {
  const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  for (const size of sizes) {
    await admin.unsafe(`CREATE DATABASE seed_${size}`);
    const url = cluster.url.replace(/\/postgres$/, `/seed_${size}`);
    const sql = postgres(url, clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 0 }, 1));
    await migrate(sql);
    const started = performance.now();
    const result = await seed(sql, {
      students: size,
      desyncRate: 0.001,
      adminEmail: "admin@staging.example.com",
      adminPassword: "bench-admin-password",
      studentPassword: "bench-student-password",
    });
    const seconds = (performance.now() - started) / 1000;
    rows.push(
      `| ${size.toLocaleString("en")} | ${result.progressRows.toLocaleString("en")} | ${
        seconds.toFixed(2)
      } s |`,
    );
    console.error(`seeded ${size} in ${seconds.toFixed(2)} s`);
    await sql.end();
  }
  await admin.end();
} finally {
  await cluster.stop();
}
console.log("| students | progress/license pairs (+ ledger rows) | seed time |\n|---:|---:|---:|");
console.log(rows.join("\n"));

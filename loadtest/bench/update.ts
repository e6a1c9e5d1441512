/**
 * Progress update benchmark: `deno run -A loadtest/bench/update.ts [--seconds 15] [--connections 32,64]`.
 *
 * A throwaway PostgreSQL cluster (normal durability) with 10,000 seeded
 * students; the real server (`main.ts`) driven by wrk at each connection count;
 * then pgbench running the same transaction (`apply_xp`) on the same database.
 * Prints a Markdown table and the ratio of the two throughputs.
 */
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit, numberList, positiveInt } from "../../lib/cli/_args.ts";
import { clientOptions } from "../../lib/db.ts";
import { migrate } from "../../lib/migrate.ts";
import { seed } from "../../lib/seed.ts";
import { issueToken } from "../../lib/tokens.ts";
import { findPgBin, startCluster } from "../../lib/dev/cluster.ts";

const values = argsOrExit({
  name: "bench:update",
  summary:
    "Progress update throughput: the real server under wrk vs pgbench running apply_xp, same database.",
  options: {
    seconds: { type: "string", value: "S", help: "seconds per run (default 15)" },
    connections: { type: "string", value: "C,C", help: "wrk and pgbench connection counts (default 32,64)" },
    students: { type: "string", value: "N", help: "students seeded (default 10000)" },
    pool: { type: "string", value: "P", help: "the server's DB_POOL_MAX (default 4)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    seconds: positiveInt().default(15),
    connections: numberList("connection counts").default([32, 64]),
    students: positiveInt().default(10_000),
    // Two connections per core: on 2 cores a pool of 4 gave ~1,300 req/s at p95 ~50 ms where 16 gave
    // ~900 at ~100 ms and 32 ~740 at ~430 ms (more backends only contend for the same CPU).
    pool: positiveInt().default(4),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb, pgbench) and wrk."],
});
const { seconds, connections, students } = values;
const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));
const JWT_SECRET = "bench-secret-bench-secret-bench-secret-0000";

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} failed:\n${text}`);
  return text;
}

async function waitReady(url: string) {
  for (let i = 0; i < 120; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} never became ready`);
}

const bin = await findPgBin();
if (!bin) throw new Error("PostgreSQL binaries not found");
const cluster = await startCluster(bin);
const rows: string[] = [];
let server: Deno.ChildProcess | undefined;
try {
  const sql = postgres(
    cluster.url,
    clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 0 }, 1),
  );
  await migrate(sql);
  const seeded = await seed(sql, {
    students,
    desyncRate: 0,
    adminEmail: "admin@bench.example",
    adminPassword: "bench-admin-password",
    studentPassword: "bench-student-password",
  });
  await sql`VACUUM ANALYZE`;
  await sql.end();

  const port = 18000 + Math.floor(Math.random() * 1000);
  server = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", fileURLToPath(new URL("../../main.ts", import.meta.url))],
    env: {
      DATABASE_URL: cluster.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      DB_POOL_MAX: String(values.pool),
      JWT_SECRET,
      RATE_LIMIT_PER_MINUTE: "0",
      LOG_REQUESTS: "0",
      SCAN_ENABLED: "0",
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  await waitReady(`${base}/readyz`);
  const { token } = await issueToken(new TextEncoder().encode(JWT_SECRET), {
    userId: seeded.adminId,
    role: "ADMIN",
  }, 3600);

  const results: Record<number, { rps: number }> = {};
  for (const c of connections) {
    const out = await run("wrk", [
      "-t2",
      `-c${c}`,
      `-d${seconds}s`,
      "-s",
      here("./update.lua"),
      base,
    ], { TOKEN: token, STUDENTS: String(students) });
    const result = JSON.parse(out.split("RESULT ")[1].split("\n")[0]);
    const rps = result.requests / (result.duration_us / 1e6);
    results[c] = { rps };
    const ms = (us: number) => (us / 1000).toFixed(1);
    rows.push(
      `| Levelguard HTTP (wrk) | ${c} | ${rps.toFixed(0)} | ${ms(result.p50_us)} | ${ms(result.p95_us)} | ${
        ms(result.p99_us)
      } | ${result.errors} |`,
    );
    console.error(rows.at(-1));
  }
  server.kill("SIGTERM");
  await server.status;
  server = undefined;

  for (const c of connections) {
    const out = await run("pgbench", [
      "-n",
      "-f",
      here("./update.sql"),
      "-D",
      `students=${students}`,
      "-D",
      `actor=${seeded.adminId}`,
      "-c",
      String(c),
      "-j",
      "2",
      "-T",
      String(seconds),
      cluster.url,
    ]);
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
    const lat = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
    const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
    rows.push(
      `| pgbench, same transaction | ${c} | ${tps.toFixed(0)} | avg ${lat.toFixed(1)} | | | ${failed} |`,
    );
    rows.push(`| **ratio HTTP / pgbench** | ${c} | **${(results[c].rps / tps).toFixed(2)}** | | | | |`);
    console.error(rows.at(-2), rows.at(-1));
  }
} finally {
  if (server) {
    server.kill("SIGTERM");
    await server.status;
  }
  await cluster.stop();
}
console.log(
  `Progress update, ${
    students.toLocaleString("en")
  } students, ${seconds} s per run, pool ${values.pool}\n\n` +
    "| what | connections | req/s (tx/s) | p50 ms | p95 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|",
);
console.log(rows.join("\n"));

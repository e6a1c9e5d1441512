/**
 * Progress update benchmark: `deno task bench:update [--seconds 15] [--connections 64] [--pool 4]`.
 *
 * A throwaway PostgreSQL cluster (normal durability) with 10,000 seeded
 * students; the real server (`main.ts`, DB_POOL_MAX = pool) driven by wrk at
 * each connection count; then pgbench running the same transaction
 * (`apply_xp`) on the same database with the pool's connection count, which is
 * what the server can at most do with its pool. Target: HTTP at least 0.7 of
 * pgbench, p99 under 50 ms at 64 connections. Also the CPU the server and
 * PostgreSQL spend per update (from /proc).
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { argsOrExit, numberList, positiveInt } from "../../lib/args.ts";
import { benchServer, cpuSeconds, run, wrk } from "./_setup.ts";

const args = argsOrExit({
  name: "bench:update",
  summary:
    "Progress update throughput: the real server under wrk vs pgbench running apply_xp, same database.",
  options: {
    seconds: { type: "string", value: "S", help: "seconds per run (default 15)" },
    connections: { type: "string", value: "C,C", help: "wrk connection counts (default 64)" },
    students: { type: "string", value: "N", help: "students seeded (default 10000)" },
    pool: { type: "string", value: "P", help: "the server's DB_POOL_MAX, and pgbench's clients (default 4)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    seconds: positiveInt().default(15),
    connections: numberList("connection counts").default([64]),
    students: positiveInt().default(10_000),
    // Two connections per core: on 2 cores a pool of 4 gave ~1,300 req/s at p95 ~50 ms where 16 gave
    // ~900 at ~100 ms and 32 ~740 at ~430 ms (more backends only contend for the same CPU).
    pool: positiveInt().default(4),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb, pgbench) and wrk."],
});
const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/** CPU seconds of every PostgreSQL process of the cluster (its postmaster's children included). */
function postgresCpu(): number {
  let total = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmd.startsWith("postgres")) total += cpuSeconds(Number(entry.name));
    } catch { /* gone */ }
  }
  return total;
}

const bench = await benchServer({
  students: args.students,
  env: { DB_POOL_MAX: String(args.pool), SCAN_ENABLED: "0" },
});
const rows: string[] = [];
const ms = (us: number) => (us / 1000).toFixed(1);
let httpBest = 0;
try {
  for (const c of args.connections) {
    const [deno0, pg0] = [cpuSeconds(bench.server.pid), postgresCpu()];
    const r = await wrk(here("./update.lua"), bench.base, {
      connections: c,
      seconds: args.seconds,
      env: { TOKEN: bench.authorization.replace("Bearer ", ""), STUDENTS: String(args.students) },
    });
    const perUpdate = (s: number) => `${((s / r.requests) * 1e6).toFixed(0)} µs`;
    httpBest = Math.max(httpBest, r.rps);
    rows.push(
      `| Levelguard HTTP (wrk) | ${c} | ${r.rps.toFixed(0)} | ${ms(r.p50_us)} | ${ms(r.p95_us)} | ${
        ms(r.p99_us)
      } | ` +
        `${r.errors} | ${perUpdate(cpuSeconds(bench.server.pid) - deno0)} | ${
          perUpdate(postgresCpu() - pg0)
        } |`,
    );
    console.error(rows.at(-1));
  }
  bench.server.kill("SIGTERM");
  await bench.server.status;

  const out = await run("pgbench", [
    "-n",
    "-f",
    here("./update.sql"),
    "-D",
    `students=${args.students}`,
    "-D",
    `actor=${bench.adminId}`,
    "-c",
    String(args.pool),
    "-j",
    "2",
    "-T",
    String(args.seconds),
    bench.cluster.url,
  ]);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const lat = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  rows.push(
    `| pgbench, same apply_xp | ${args.pool} | ${tps.toFixed(0)} | avg ${
      lat.toFixed(1)
    } | | | ${failed} | | |`,
  );
  rows.push(`| **ratio HTTP / pgbench** | | **${(httpBest / tps).toFixed(2)}** | | | | | | |`);
  console.error(rows.at(-2), "\n", rows.at(-1));
} finally {
  await bench.stop();
}
console.log(
  `Progress update, ${
    args.students.toLocaleString("en")
  } students, ${args.seconds} s per run, pool ${args.pool}\n\n` +
    "| what | connections | req/s (tx/s) | p50 ms | p95 ms | p99 ms | errors | server CPU per update | PostgreSQL CPU per update |\n" +
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
);
console.log(rows.join("\n"));

/**
 * Progress update benchmark: `deno task bench:update [--seconds 15] [--connections 64] [--pool P]
 * [--pgbench-clients 10]`.
 *
 * A throwaway PostgreSQL cluster (normal durability) with 10,000 seeded
 * students; the real server (`main.ts`) in the default configuration (DB_POOL_MAX
 * 10 unless --pool says otherwise) driven by wrk at each connection count; then
 * pgbench calling the same `apply_xp` once per transaction with 10 clients on
 * the same database and the same 2 cores. Target (SPEC "Targets"): HTTP at
 * least 1.0 × pgbench, p99 under 50 ms at 64 connections. Also the CPU the
 * server and PostgreSQL spend per update (from /proc), and how many awards the
 * server's calls carried (its levelguard_xp_batch_size: group commit).
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { argsOrExit, numberList, positiveInt } from "../../lib/args.ts";
import { configSchema } from "../../lib/config.ts";
import { benchServer, cpuSeconds, run, wrk } from "./_setup.ts";

const args = argsOrExit({
  name: "bench:update",
  summary:
    "Progress update throughput: the real server under wrk vs pgbench running apply_xp, same database.",
  options: {
    seconds: { type: "string", value: "S", help: "seconds per run (default 15)" },
    connections: { type: "string", value: "C,C", help: "wrk connection counts (default 64)" },
    students: { type: "string", value: "N", help: "students seeded (default 10000)" },
    pool: { type: "string", value: "P", help: "the server's DB_POOL_MAX (default: the configuration's, 10)" },
    "pgbench-clients": { type: "string", value: "N", help: "pgbench's clients (default 10)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    seconds: positiveInt().default(15),
    connections: numberList("connection counts").default([64]),
    students: positiveInt().default(10_000),
    pool: positiveInt().optional(),
    "pgbench-clients": positiveInt().default(10),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb, pgbench) and wrk."],
});
const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/**
 * CPU seconds of the benchmark's PostgreSQL cluster: its postmaster (found by the port in its
 * command line), the backends and workers it started, and those that have exited (reaped by the
 * postmaster, so counted in its children's time). Other clusters on the machine are not counted.
 */
function clusterCpu(port: string): number {
  const stats = new Map<number, string[]>();
  let postmaster: number | undefined;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const pid = Number(entry.name);
      stats.set(pid, Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" "));
      const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
      if (cmd.includes(`port=${port} `) || cmd.endsWith(`port=${port}`)) postmaster ??= pid;
    } catch { /* gone */ }
  }
  if (postmaster === undefined) return 0;
  const seconds = (f: string[], from: number, to: number) =>
    f.slice(from, to + 1).reduce((sum, v) => sum + Number(v), 0) / 100;
  let total = seconds(stats.get(postmaster)!, 11, 14);
  for (const f of stats.values()) if (Number(f[1]) === postmaster) total += seconds(f, 11, 12);
  return total;
}

const bench = await benchServer({
  students: args.students,
  env: { ...(args.pool ? { DB_POOL_MAX: String(args.pool) } : {}), SCAN_ENABLED: "0" },
});
const pool = args.pool ?? configSchema.shape.DB_POOL_MAX.parse(undefined);
const port = new URL(bench.cluster.url).port;
const postgresCpu = () => clusterCpu(port);
const pgbenchClients = args["pgbench-clients"];

/** The server's calls so far and the awards they carried (levelguard_xp_batch_size). */
async function calls(): Promise<{ calls: number; awards: number }> {
  const text = await (await fetch(`${bench.base}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return { calls: value("levelguard_xp_batch_size_count"), awards: value("levelguard_xp_batch_size_sum") };
}
const rows: string[] = [];
const ms = (us: number) => (us / 1000).toFixed(1);
let httpBest = 0;
try {
  for (const c of args.connections) {
    const [deno0, pg0, calls0] = [cpuSeconds(bench.server.pid), postgresCpu(), await calls()];
    const r = await wrk(here("./update.lua"), bench.base, {
      connections: c,
      seconds: args.seconds,
      env: { TOKEN: bench.authorization.replace("Bearer ", ""), STUDENTS: String(args.students) },
    });
    const perUpdate = (s: number) => `${((s / r.requests) * 1e6).toFixed(0)} µs`;
    const [deno1, pg1, calls1] = [cpuSeconds(bench.server.pid), postgresCpu(), await calls()];
    const perCall = (calls1.awards - calls0.awards) / Math.max(1, calls1.calls - calls0.calls);
    httpBest = Math.max(httpBest, r.rps);
    rows.push(
      `| Levelguard HTTP (wrk) | ${c} | ${r.rps.toFixed(0)} | ${ms(r.p50_us)} | ${ms(r.p95_us)} | ${
        ms(r.p99_us)
      } | ` +
        `${r.errors} | ${perUpdate(deno1 - deno0)} | ${perUpdate(pg1 - pg0)} | ${perCall.toFixed(1)} |`,
    );
    console.error(rows.at(-1));
  }
  bench.server.kill("SIGTERM");
  await bench.server.status;

  const pgbench0 = postgresCpu();
  const out = await run("pgbench", [
    "-n",
    "-f",
    here("./update.sql"),
    "-D",
    `students=${args.students}`,
    "-D",
    `actor=${bench.adminId}`,
    "-c",
    String(pgbenchClients),
    "-j",
    "2",
    "-T",
    String(args.seconds),
    bench.cluster.url,
  ]);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const lat = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  const done = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
  const pgbenchCpu = `${(((postgresCpu() - pgbench0) / Math.max(1, done)) * 1e6).toFixed(0)} µs`;
  rows.push(
    `| pgbench, same apply_xp | ${pgbenchClients} clients | ${tps.toFixed(0)} | avg ${
      lat.toFixed(1)
    } | | | ${failed} | | ${pgbenchCpu} | 1 |`,
  );
  rows.push(`| **ratio HTTP / pgbench** | | **${(httpBest / tps).toFixed(2)}** | | | | | | | |`);
  console.error(rows.at(-2), "\n", rows.at(-1));
} finally {
  await bench.stop();
}
console.log(
  `Progress update, ${
    args.students.toLocaleString("en")
  } students, ${args.seconds} s per run, pool ${pool}\n\n` +
    "| what | connections | req/s (tx/s) | p50 ms | p95 ms | p99 ms | errors | server CPU per update | PostgreSQL CPU per update | awards per call |\n" +
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
);
console.log(rows.join("\n"));

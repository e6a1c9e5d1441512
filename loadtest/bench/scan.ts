/**
 * Integrity scan benchmark: `deno run -A loadtest/bench/scan.ts [--sizes 10000,100000,1000000]`.
 * Starts a throwaway PostgreSQL cluster (normal durability), seeds each size
 * with lib/seed.ts (desync rate 0.001), then runs a full check 3 times and
 * reports the median time and this process's peak RSS during the scans
 * (sampled every 5 ms) against its RSS before them; also the latency of
 * GET /api/v1/health/status and of a one-student check. Prints Markdown.
 * With `--replica`, a streaming replica of the cluster (`pg_basebackup -R`,
 * the same memory settings) serves the full checks' reads (DATABASE_REPLICA_URL);
 * each size waits until the replica has replayed everything first.
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit, numberList } from "../../lib/args.ts";
import { loadConfig } from "../../lib/config.ts";
import { clientOptions } from "../../lib/db.ts";
import { migrate } from "../../lib/migrate.ts";
import { buildServices } from "../../lib/services.ts";
import { setQuiet } from "../../lib/log.ts";
import { seed } from "../../lib/seed.ts";
import { issueToken } from "../../lib/tokens.ts";
import { appDeps, createApp } from "../../routes/app.ts";
import { findPgBin, startCluster, startReplica } from "../../tests/support/cluster.ts";
import type { Replica } from "../../lib/replica.ts";

const RUNS = 3;
const STATUS_REQUESTS = 500;

const { sizes, replica: withReplica } = argsOrExit({
  name: "bench:scan",
  summary: "Integrity scan time, memory and status latency at each size, on a throwaway cluster.",
  options: {
    sizes: { type: "string", value: "N,N", help: "student counts (default 10000,100000,1000000)" },
    replica: { type: "boolean", help: "full checks read from a streaming replica of the cluster" },
  },
  schema: z.object({
    _: z.array(z.string()),
    sizes: numberList("student counts").default([10000, 100000, 1000000]),
    replica: z.boolean().default(false),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb)."],
});
setQuiet(true);

/** Waits until the replica has replayed all the primary wrote (the seed, VACUUM) and is usable. */
async function caughtUp(replica: Replica) {
  for (let i = 0; i < 600; i++) {
    const state = await replica.check();
    if (state.usable && state.lagS === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the replica did not catch up: ${replica.state.reason}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * p) - 1];
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

/** Runs `fn` while sampling RSS; returns its result, duration and peak RSS. */
async function sampled<T>(fn: () => Promise<T>) {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 5);
  const started = performance.now();
  try {
    const result = await fn();
    return { result, ms: performance.now() - started, peak: Math.max(peak, Deno.memoryUsage().rss) };
  } finally {
    clearInterval(timer);
  }
}

const bin = await findPgBin();
if (!bin) throw new Error("PostgreSQL binaries not found");
// Durability stays on; memory as a production server of this size would have it.
const memory = { shared_buffers: "512MB", work_mem: "64MB", max_wal_size: "4GB" };
const cluster = await startCluster(bin, memory);
const standby = withReplica ? await startReplica(bin, cluster.url, memory) : null;
const logDir = await Deno.makeTempDir({ prefix: "levelguard-bench-logs-" });
const rows: string[] = [];
try {
  const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  for (const size of sizes) {
    await admin.unsafe(`CREATE DATABASE scan_${size}`);
    const url = cluster.url.replace(/\/postgres$/, `/scan_${size}`);
    const sql = postgres(url, clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 0 }, 4));
    await migrate(sql);
    const seeded = await seed(sql, {
      students: size,
      desyncRate: 0.001,
      adminEmail: "admin@staging.example.com",
      adminPassword: "bench-admin-password",
      studentPassword: "bench-student-password",
    });
    // What autovacuum does on a live database (visibility map, statistics).
    await sql`VACUUM ANALYZE`;
    const config = loadConfig({
      LOG_REQUESTS: "0",
      RATE_LIMIT_PER_MINUTE: "0",
      SCAN_ENABLED: "1",
      LOG_DIR: logDir,
    });
    const replicaSql = standby
      ? postgres(standby.url.replace(/\/postgres$/, `/scan_${size}`), clientOptions(config, 4))
      : undefined;
    const services = await buildServices(config, {
      sql,
      probe: async () => void await sql`SELECT 1`,
      replica: replicaSql,
    });
    const { runner } = services;
    if (services.replica) await caughtUp(services.replica);
    const before = Deno.memoryUsage().rss;
    const times: number[] = [];
    let peak = before;
    let last;
    for (let i = 0; i < RUNS; i++) {
      const run = await sampled(() => runner.run("cli"));
      if (run.result.outcome !== "success") throw new Error(`scan failed: ${run.result.error}`);
      if (standby && run.result.read_from !== "replica") {
        throw new Error("the check did not read the replica");
      }
      times.push(run.ms);
      peak = Math.max(peak, run.peak);
      last = run.result;
    }
    const one: number[] = [];
    for (let i = 1; i <= 20; i++) one.push((await sampled(() => runner.run("manual", i * 7))).ms);

    const tokenKey = new TextEncoder().encode("bench-secret-bench-secret-bench-secret-00");
    const app = createApp(await appDeps(services, { tokenKey }));
    const { token } = await issueToken(tokenKey, { userId: seeded.adminId, role: "ADMIN", epoch: 0 }, 600);
    const headers = { Authorization: `Bearer ${token}` };
    const latencies: number[] = [];
    for (let i = 0; i < STATUS_REQUESTS; i++) {
      const t = performance.now();
      const res = await app.request("/api/v1/health/status", { headers });
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
    }
    rows.push(
      `| ${size.toLocaleString("en")} | ${last!.pairs_checked!.toLocaleString("en")} | ${
        last!.violation_count
      } | ` +
        `${(median(times) / 1000).toFixed(2)} s (${times.map((t) => (t / 1000).toFixed(2)).join(" / ")}) | ` +
        `${mb(before)} → ${mb(peak)} MB | ${median(one).toFixed(1)} ms | ` +
        `${median(latencies).toFixed(2)} / ${pct(latencies, 0.95).toFixed(2)} ms |`,
    );
    console.error(`size ${size}: scans ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
    await sql.end();
    await replicaSql?.end();
    await admin.unsafe(`DROP DATABASE scan_${size}`);
  }
  await admin.end();
} finally {
  await standby?.stop();
  await cluster.stop();
  await Deno.remove(logDir, { recursive: true });
}
if (standby) console.log("Full checks read from a streaming replica (`--replica`).\n");
console.log(
  "| students | pairs checked | violations | full check, median of 3 (runs) | process RSS before → peak during scans " +
    "| one-student check (median) | GET /health/status p50 / p95 |",
);
console.log("|---:|---:|---:|---:|---:|---:|---:|");
console.log(rows.join("\n"));

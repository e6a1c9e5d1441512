/**
 * Integrity scan benchmark: `deno run -A loadtest/bench/scan.ts [--sizes 10000,100000,1000000]`.
 * Starts a throwaway PostgreSQL cluster (normal durability), seeds each size
 * with lib/seed.ts (desync rate 0.001), then runs a full check 3 times and
 * reports the median time and this process's peak RSS during the scans
 * (sampled every 5 ms) against its RSS before them; also the latency of
 * GET /api/v1/health/status and of a one-student check. Prints Markdown.
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit, numberList } from "../../lib/cli/_args.ts";
import { loadConfig } from "../../lib/config.ts";
import { clientOptions } from "../../lib/db.ts";
import { migrate } from "../../lib/migrate.ts";
import { buildServices } from "../../lib/services.ts";
import { setQuiet } from "../../lib/log.ts";
import { seed } from "../../lib/seed.ts";
import { issueToken } from "../../lib/tokens.ts";
import { createApp } from "../../routes/app.ts";
import { assetUrls } from "../../routes/assets.ts";
import { rateLimitStore } from "../../routes/middleware/rate_limit.ts";
import { findPgBin, startCluster } from "../../lib/dev/cluster.ts";

const RUNS = 3;
const STATUS_REQUESTS = 500;

const { sizes } = argsOrExit({
  name: "bench:scan",
  summary: "Integrity scan time, memory and status latency at each size, on a throwaway cluster.",
  options: { sizes: { type: "string", value: "N,N", help: "student counts (default 10000,100000,1000000)" } },
  schema: z.object({
    _: z.array(z.string()),
    sizes: numberList("student counts").default([10000, 100000, 1000000]),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb)."],
});
setQuiet(true);

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
const cluster = await startCluster(bin, { shared_buffers: "512MB", work_mem: "64MB", max_wal_size: "4GB" });
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
    const services = await buildServices(config, { sql, probe: async () => void await sql`SELECT 1` });
    const { runner } = services;
    const before = Deno.memoryUsage().rss;
    const times: number[] = [];
    let peak = before;
    let last;
    for (let i = 0; i < RUNS; i++) {
      const run = await sampled(() => runner.run("cli"));
      if (run.result.outcome !== "success") throw new Error(`scan failed: ${run.result.error}`);
      times.push(run.ms);
      peak = Math.max(peak, run.peak);
      last = run.result;
    }
    const one: number[] = [];
    for (let i = 1; i <= 20; i++) one.push((await sampled(() => runner.run("manual", i * 7))).ms);

    const tokenKey = new TextEncoder().encode("bench-secret-bench-secret-bench-secret-00");
    const app = createApp({
      ...services,
      tokenKey,
      rateLimitStore: rateLimitStore(config, sql),
      assets: await assetUrls(),
    });
    const { token } = await issueToken(tokenKey, { userId: seeded.adminId, role: "ADMIN" }, 600);
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
    await admin.unsafe(`DROP DATABASE scan_${size}`);
  }
  await admin.end();
} finally {
  await cluster.stop();
  await Deno.remove(logDir, { recursive: true });
}
console.log(
  "| students | pairs checked | violations | full check, median of 3 (runs) | process RSS before → peak during scans " +
    "| one-student check (median) | GET /health/status p50 / p95 |",
);
console.log("|---:|---:|---:|---:|---:|---:|---:|");
console.log(rows.join("\n"));

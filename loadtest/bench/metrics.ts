/**
 * Scrape benchmark: `deno task bench:metrics [--scrapes 300]`. GET /metrics
 * one request at a time (as Prometheus scrapes) against the real server on a
 * seeded cluster (10,000 students), after traffic on every route family has
 * created the series a busy instance has: once idle, once while wrk keeps the
 * status endpoint busy at 32 connections. Target: p95 under 5 ms.
 */
import { z } from "zod";
import { fileURLToPath } from "node:url";
import { argsOrExit, positiveInt } from "../../lib/args.ts";
import { benchServer, cpuSeconds, percentile, wrk } from "./_setup.ts";

const args = argsOrExit({
  name: "bench:metrics",
  summary: "GET /metrics latency, idle and under load (target: p95 < 5 ms).",
  options: { scrapes: { type: "string", value: "N", help: "scrapes per run (default 300)" } },
  schema: z.object({ _: z.array(z.string()), scrapes: positiveInt().default(300) }),
  notes: ["Needs PostgreSQL's binaries (initdb) and wrk."],
});

const bench = await benchServer({ students: 10_000 });
const rows: string[] = [];
try {
  const auth = { Authorization: bench.authorization };
  // Series of a lived-in instance: several routes, statuses and methods.
  for (
    const path of ["/api/v1/health/status", "/api/v1/health/metrics", "/api/v1/health/violations", "/nope"]
  ) {
    for (let i = 0; i < 5; i++) await (await fetch(`${bench.base}${path}`, { headers: auth })).body?.cancel();
  }
  let bytes = 0;
  const measure = async (label: string) => {
    const times: number[] = [];
    const cpu0 = cpuSeconds(bench.server.pid);
    for (let i = 0; i < args.scrapes; i++) {
      const start = performance.now();
      const res = await fetch(`${bench.base}/metrics`);
      bytes = (await res.arrayBuffer()).byteLength;
      if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
      times.push(performance.now() - start);
      await new Promise((r) => setTimeout(r, 5));
    }
    const cpuMs = ((cpuSeconds(bench.server.pid) - cpu0) / args.scrapes) * 1000;
    rows.push(
      `| ${label} | ${percentile(times, 0.5).toFixed(2)} | ${percentile(times, 0.95).toFixed(2)} | ` +
        `${percentile(times, 0.99).toFixed(2)} | ${(bytes / 1024).toFixed(1)} KiB |` +
        (label === "idle" ? ` ${cpuMs.toFixed(2)} ms |` : " (shared with the load) |"),
    );
    console.error(rows.at(-1));
  };
  await measure("idle");
  const load = wrk(fileURLToPath(new URL("./status.lua", import.meta.url)), bench.base, {
    connections: 32,
    seconds: Math.max(5, Math.ceil(args.scrapes * 0.012)),
    env: { TOKEN: bench.authorization },
  });
  await new Promise((r) => setTimeout(r, 500));
  await measure("status load, 32 connections");
  await load;
} finally {
  await bench.stop();
}
console.log(
  `GET /metrics, ${args.scrapes} scrapes one at a time, 10,000 students\n\n` +
    "| while | p50 ms | p95 ms | p99 ms | body | server CPU per scrape |\n" +
    "|---|---:|---:|---:|---:|---:|\n" + rows.join("\n"),
);

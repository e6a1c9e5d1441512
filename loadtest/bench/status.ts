/**
 * Status benchmark: `deno task bench:status [--seconds 10] [--connections 32]`.
 * GET /api/v1/health/status under wrk against the real server on a seeded
 * cluster (10,000 students), with the server's CPU per request. Target:
 * at least 10,000 requests/s with p99 under 5 ms at 32 connections.
 */
import { z } from "zod";
import { fileURLToPath } from "node:url";
import { argsOrExit, numberList, positiveInt } from "../../lib/args.ts";
import { benchServer, cpuSeconds, memoryMb, wrk } from "./_setup.ts";

const args = argsOrExit({
  name: "bench:status",
  summary:
    "GET /api/v1/health/status throughput and latency under wrk (target: 10,000 req/s, p99 < 5 ms at 32).",
  options: {
    seconds: { type: "string", value: "S", help: "seconds per run (default 10)" },
    connections: { type: "string", value: "C,C", help: "connection counts (default 32)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    seconds: positiveInt().default(10),
    connections: numberList("connection counts").default([32]),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb) and wrk."],
});

const bench = await benchServer({ students: 10_000 });
const rows: string[] = [];
try {
  // The startup check has run; one request fills the cache.
  await (await fetch(`${bench.base}/api/v1/health/status`, {
    headers: { Authorization: bench.authorization },
  }))
    .body?.cancel();
  for (const connections of args.connections) {
    const cpu0 = cpuSeconds(bench.server.pid);
    const r = await wrk(fileURLToPath(new URL("./status.lua", import.meta.url)), bench.base, {
      connections,
      seconds: args.seconds,
      env: { TOKEN: bench.authorization },
    });
    const cpuUs = ((cpuSeconds(bench.server.pid) - cpu0) / r.requests) * 1e6;
    const mem = memoryMb(bench.server.pid);
    rows.push(
      `| ${connections} | ${r.rps.toFixed(0)} | ${(r.p50_us / 1000).toFixed(2)} | ${
        (r.p95_us / 1000).toFixed(2)
      } | ` +
        `${(r.p99_us / 1000).toFixed(2)} | ${r.errors} | ${cpuUs.toFixed(0)} µs | ${
          mem.peak.toFixed(0)
        } MB |`,
    );
    console.error(rows.at(-1));
  }
} finally {
  await bench.stop();
}
console.log(
  "GET /api/v1/health/status, 10,000 students\n\n" +
    "| connections | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU per request | server peak RSS |\n" +
    "|---:|---:|---:|---:|---:|---:|---:|---:|\n" + rows.join("\n"),
);

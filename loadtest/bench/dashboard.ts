/**
 * Dashboard benchmark: `deno task bench:dashboard [--students 10000] [--requests 300]`.
 * A throwaway PostgreSQL cluster seeded with N students (desync rate 0.01),
 * the real server (`main.ts`), one signed-in admin; then sequential requests
 * (keep-alive) for the full /admin/health page, each of its htmx parts and a
 * student page. Prints p50/p95/p99 per kind, as Markdown.
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit, positiveInt } from "../../lib/args.ts";
import { createSession } from "../../lib/sessions.ts";
import { benchServer, percentile } from "./_setup.ts";

const { students, requests } = argsOrExit({
  name: "bench:dashboard",
  summary: "Latency of the dashboard's full page and htmx parts at N students, over HTTP.",
  options: {
    students: { type: "string", value: "N", help: "students seeded (default 10000)" },
    requests: { type: "string", value: "R", help: "requests per kind (default 300)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    students: positiveInt().default(10_000),
    requests: positiveInt().default(300),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb)."],
});

const bench = await benchServer({ students, desyncRate: 0.01 });
try {
  const session = await (async () => {
    const sql = postgres(bench.cluster.url, { max: 1, onnotice: () => {} });
    try {
      return await createSession(sql, bench.adminId, 3600);
    } finally {
      await sql.end();
    }
  })();
  const base = bench.base;
  // The startup check has to have finished, so the page shows real data.
  await new Promise((r) => setTimeout(r, 1000));
  const cookie = { cookie: `lg_session=${session.token}` };
  const part = (target: string) => ({ ...cookie, "hx-request": "true", "hx-target": target });
  const kinds: [string, string, Record<string, string>][] = [
    ["full page /admin/health", "/admin/health", cookie],
    ["part: live (gauge, cards)", "/admin/health?seen=1", part("live")],
    ["part: violations table", "/admin/health?kind=MISSING_LICENSE", part("violations-part")],
    ["part: history chart", "/admin/health?window=7d", part("history-part")],
    ["full page /admin/students/:id", "/admin/students/42", cookie],
  ];
  const rows: string[] = [];
  for (const [name, path, headers] of kinds) {
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < requests + 20; i++) {
      const t = performance.now();
      const res = await fetch(`${base}${path}`, { headers });
      const body = await res.arrayBuffer();
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
      if (i >= 20) times.push(performance.now() - t); // the first 20 warm up
      bytes = body.byteLength;
    }
    rows.push(
      `| ${name} | ${percentile(times, 0.5).toFixed(2)} | ${percentile(times, 0.95).toFixed(2)} | ${
        percentile(times, 0.99).toFixed(2)
      } | ${(bytes / 1024).toFixed(1)} KB |`,
    );
    console.error(rows.at(-1));
  }
  console.log(
    `Dashboard, ${
      students.toLocaleString("en")
    } students, ${requests} sequential requests per kind over HTTP\n\n` +
      "| request | p50 ms | p95 ms | p99 ms | size |\n|---|---:|---:|---:|---:|\n" + rows.join("\n"),
  );
} finally {
  await bench.stop();
}

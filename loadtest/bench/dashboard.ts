/**
 * Dashboard benchmark: `deno task bench:dashboard [--students 10000] [--requests 300]`.
 * A throwaway PostgreSQL cluster seeded with N students (desync rate 0.01),
 * the real server (`main.ts`), one signed-in admin; then sequential requests
 * (keep-alive) for the full /admin/health page, each of its htmx parts and a
 * student page. Prints p50/p95/p99 per kind, as Markdown.
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit, positiveInt } from "../../lib/cli/_args.ts";
import { clientOptions } from "../../lib/db.ts";
import { findPgBin, startCluster } from "../../lib/dev/cluster.ts";
import { migrate } from "../../lib/migrate.ts";
import { seed } from "../../lib/seed.ts";
import { createSession } from "../../lib/sessions.ts";

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

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * p) - 1];

const bin = await findPgBin();
if (!bin) throw new Error("PostgreSQL binaries not found");
const cluster = await startCluster(bin);
const dir = await Deno.makeTempDir({ prefix: "levelguard-bench-dashboard-" });
let server: Deno.ChildProcess | undefined;
try {
  const sql = postgres(
    cluster.url,
    clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 0 }, 2),
  );
  await migrate(sql);
  const seeded = await seed(sql, {
    students,
    desyncRate: 0.01,
    adminEmail: "admin@bench.example",
    adminPassword: "bench-admin-password",
    studentPassword: "bench-student-password",
  });
  await sql`VACUUM ANALYZE`;
  const session = await createSession(sql, seeded.adminId, 3600);
  await sql.end();

  const port = 19000 + Math.floor(Math.random() * 1000);
  server = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../main.ts", import.meta.url).pathname],
    env: {
      DATABASE_URL: cluster.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      JWT_SECRET: "bench-secret-bench-secret-bench-secret-0000",
      RATE_LIMIT_PER_MINUTE: "0",
      LOG_REQUESTS: "0",
      SCAN_ENABLED: "1",
      SCAN_CRON: "0 0 1 1 *",
      DATA_DIR: dir,
      LOG_DIR: dir,
      DB_POOL_MAX: "4",
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`${base}/readyz`).then((r) => r.body?.cancel().then(() => r.ok), () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
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
      `| ${name} | ${pct(times, 0.5).toFixed(2)} | ${pct(times, 0.95).toFixed(2)} | ${
        pct(times, 0.99).toFixed(2)
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
  if (server) {
    server.kill("SIGTERM");
    await server.status;
  }
  await cluster.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * Scaling benchmark: `deno run -A loadtest/bench/scale.ts [--seconds 10]`, the figures of the
 * README's "Scaling" section.
 *
 * One throwaway PostgreSQL cluster (normal durability) with 10,000 seeded students, and on it:
 * progress updates (64 connections in all) and status reads (32 in all) against one, two and three
 * server processes (DB_POOL_MAX 4 each; one wrk per process, the connections split between them;
 * rates summed, the worse percentiles reported), then one process through PgBouncer in transaction
 * pooling (DB_PREPARE=0) against the same one direct with and without prepared statements. Every process is warmed up with a short run of
 * both scripts first. Nothing is tuned per setup: wrk, the servers and PostgreSQL share the
 * machine's cores, as they would on one host.
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { argsOrExit, positiveInt } from "../../lib/args.ts";
import { findPgBouncer, type PgBouncer, startPgBouncer } from "../../tests/support/pgbouncer.ts";
import { seededCluster } from "../../tests/support/seeded_cluster.ts";
import { type ServerProcess, startServer } from "../../tests/support/server_process.ts";
import { issueToken } from "../../lib/tokens.ts";
import { BENCH_SECRET, wrk } from "./_setup.ts";

const args = argsOrExit({
  name: "bench:scale",
  summary: "Updates and status reads with one, two and three server processes, and through PgBouncer.",
  options: {
    seconds: { type: "string", value: "S", help: "seconds per measured run (default 10)" },
  },
  schema: z.object({ _: z.array(z.string()), seconds: positiveInt().default(10) }),
  notes: ["Needs PostgreSQL's binaries (initdb), wrk and pgbouncer."],
});

const STUDENTS = 10_000;
const UPDATE_CONNECTIONS = 64;
const STATUS_CONNECTIONS = 32;
const POOL = 4;
const WARM_UP_SECONDS = 2;
const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/** One measured setup: the summed rate and the worst percentiles over its wrk runs. */
interface Figures {
  rps: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  errors: number;
}

/** `total` connections split over `n` parts as evenly as possible (64 over 3: 22, 21, 21). */
function split(total: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

/** Runs one wrk per server at the same time, `connections` split between them. */
async function load(
  kind: "update" | "status",
  servers: ServerProcess[],
  connections: number,
  seconds: number,
  token: string,
): Promise<Figures> {
  const script = here(kind === "update" ? "./update.lua" : "./status.lua");
  // update.lua adds "Bearer " itself; status.lua sends the header as given.
  const env: Record<string, string> = kind === "update"
    ? { TOKEN: token, STUDENTS: String(STUDENTS) }
    : { TOKEN: `Bearer ${token}` };
  const runs = await Promise.all(
    split(connections, servers.length).map((c, i) =>
      wrk(script, servers[i].url, { connections: c, seconds, env })
    ),
  );
  return {
    rps: runs.reduce((sum, r) => sum + r.rps, 0),
    p50Ms: Math.max(...runs.map((r) => r.p50_us)) / 1000,
    p95Ms: Math.max(...runs.map((r) => r.p95_us)) / 1000,
    p99Ms: Math.max(...runs.map((r) => r.p99_us)) / 1000,
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
  };
}

const pgbouncerBin = findPgBouncer();
if (!pgbouncerBin) {
  console.error("bench:scale: pgbouncer is not installed (Debian: apt-get install pgbouncer)");
  Deno.exit(1);
}
console.error(`bench:scale: seeding ${STUDENTS.toLocaleString("en")} students…`);
const seeded = await seededCluster({ students: STUDENTS, desyncRate: 0.001 });
if (!seeded) {
  console.error("bench:scale: PostgreSQL binaries not found (Debian: apt-get install postgresql)");
  Deno.exit(1);
}
const { token } = await issueToken(new TextEncoder().encode(BENCH_SECRET), {
  userId: seeded.adminId,
  role: "ADMIN",
  epoch: 0, // a freshly seeded account: never changed
}, 3600);
const dir = await Deno.makeTempDir({ prefix: "levelguard-bench-scale-" });
const serverEnv = {
  DATABASE_URL: seeded.url,
  DB_POOL_MAX: String(POOL),
  JWT_SECRET: BENCH_SECRET,
  RATE_LIMIT_PER_MINUTE: "0",
  LOG_REQUESTS: "0",
  SCAN_ENABLED: "0",
  DATA_DIR: dir,
  LOG_DIR: dir,
};
const servers: ServerProcess[] = [];
let pooler: PgBouncer | undefined;
const rows: string[] = [];
/** Non-2xx answers and socket errors, per setup: a run with any is no measurement of the happy path. */
const errorNotes: string[] = [];
const ms = (x: number) => x.toFixed(1);

/** Warms each server up with both scripts, so no setup measures a cold JIT. */
async function warmUp(list: ServerProcess[]) {
  for (const server of list) {
    await load("update", [server], 16, WARM_UP_SECONDS, token);
    await load("status", [server], 16, WARM_UP_SECONDS, token);
  }
}

function row(setup: string, updates: Figures, status: Figures) {
  rows.push(
    `| ${setup} | ${updates.rps.toFixed(0)} | ${ms(updates.p50Ms)} | ${ms(updates.p95Ms)} | ${
      ms(updates.p99Ms)
    } | ${status.rps.toFixed(0)} | ${ms(status.p99Ms)} |`,
  );
  if (updates.errors || status.errors) {
    errorNotes.push(
      `${setup}: ${updates.errors} update and ${status.errors} status errors (non-2xx or socket)`,
    );
  }
  console.error(rows.at(-1));
}

try {
  servers.push(...await Promise.all([1, 2, 3].map(() => startServer(serverEnv))));
  // A status with something in it: one full check, recorded before any status read.
  const check = await fetch(`${servers[0].url}/api/v1/health/check-now`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!check.ok) throw new Error(`check-now answered ${check.status}`);
  await check.body?.cancel();
  await warmUp(servers);

  for (const n of [1, 2, 3]) {
    const using = servers.slice(0, n);
    const updates = await load("update", using, UPDATE_CONNECTIONS, args.seconds, token);
    const status = await load("status", using, STATUS_CONNECTIONS, args.seconds, token);
    row(
      `${n} process${n > 1 ? "es" : ""}, pool ${POOL}${n > 1 ? " each" : ""}, direct`,
      updates,
      status,
    );
  }
  await Promise.all(servers.splice(0).map((s) => s.stop()));

  // Several instances share one rate-limit budget only through PostgreSQL: one upsert per request. All of
  // wrk's requests come from one address, so they all update one row (the worst case; real clients spread).
  const shared = await Promise.all(
    [1, 2].map(() =>
      startServer({ ...serverEnv, RATE_LIMIT_STORE: "postgres", RATE_LIMIT_PER_MINUTE: "1000000" })
    ),
  );
  servers.push(...shared);
  await warmUp(shared);
  row(
    `2 processes, pool ${POOL} each, direct, rate limit counted in PostgreSQL (RATE_LIMIT_STORE=postgres)`,
    await load("update", shared, UPDATE_CONNECTIONS, args.seconds, token),
    await load("status", shared, STATUS_CONNECTIONS, args.seconds, token),
  );
  await Promise.all(servers.splice(0).map((s) => s.stop()));

  // What turning prepared statements off costs by itself, without a pooler in between.
  const unprepared = await startServer({ ...serverEnv, DB_PREPARE: "0" });
  servers.push(unprepared);
  await warmUp([unprepared]);
  row(
    `1 process, pool ${POOL}, direct, DB_PREPARE=0`,
    await load("update", [unprepared], UPDATE_CONNECTIONS, args.seconds, token),
    await load("status", [unprepared], STATUS_CONNECTIONS, args.seconds, token),
  );
  await Promise.all(servers.splice(0).map((s) => s.stop()));

  pooler = await startPgBouncer(pgbouncerBin, seeded.url);
  const pooled = await startServer({
    ...serverEnv,
    DATABASE_URL: pooler.through(seeded.url),
    DB_PREPARE: "0",
    // As the README says to run behind a pooler: LISTEN (status cache events) on the server itself.
    DATABASE_DIRECT_URL: seeded.url,
  });
  servers.push(pooled);
  await warmUp([pooled]);
  row(
    `1 process, pool ${POOL}, through PgBouncer (transaction pooling, DB_PREPARE=0)`,
    await load("update", [pooled], UPDATE_CONNECTIONS, args.seconds, token),
    await load("status", [pooled], STATUS_CONNECTIONS, args.seconds, token),
  );
} finally {
  await Promise.all(servers.map((s) => s.stop()));
  await pooler?.stop();
  await seeded.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

console.log(
  `Scaling on this machine (${navigator.hardwareConcurrency} cores; PostgreSQL, the servers and wrk share them), ` +
    `${
      STUDENTS.toLocaleString("en")
    } students, ${args.seconds} s per run; updates at ${UPDATE_CONNECTIONS} ` +
    `connections in all, status reads at ${STATUS_CONNECTIONS}, split over one wrk per process ` +
    "(rates summed, the worst process's percentiles):\n\n" +
    "| setup | updates/s | p50 ms | p95 ms | p99 ms | status reads/s | status p99 ms |\n" +
    "|---|---:|---:|---:|---:|---:|---:|\n" + rows.join("\n") +
    (errorNotes.length ? `\n\nERRORS, these figures are not valid:\n${errorNotes.join("\n")}` : "") +
    `\n\n\`deno run -A loadtest/bench/scale.ts --seconds ${args.seconds}\``,
);
if (errorNotes.length) Deno.exit(1);

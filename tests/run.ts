/**
 * Test runner: picks a PostgreSQL (TEST_DATABASE_URL / DATABASE_URL, else a
 * throwaway cluster when initdb is installed, else PGlite), builds a migrated
 * template database once, then runs `deno test` on every test file in
 * parallel. Each test copies the template (`CREATE DATABASE ... TEMPLATE`).
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit } from "../lib/args.ts";
import { migrate } from "../lib/migrate.ts";
import { type Cluster, findPgBin, startCluster } from "./support/cluster.ts";
import { findPgBouncer, startPgBouncer } from "./support/pgbouncer.ts";
import { hermeticEnv } from "./_process.ts";

const TEMPLATE = `levelguard_template_${Deno.pid}`;

/** The files run a second time through PgBouncer: concurrency, scheduling, several instances. */
const POOLED_FILES = [
  "coupling_test.ts",
  "apply_xp_batch_test.ts",
  "scheduler_test.ts",
  "multi_instance_test.ts",
  "notify_test.ts",
  "canary_test.ts",
  "account_authority_test.ts",
  // The hash upgrade's flag is a transaction-local setting: it must hold through transaction pooling.
  "password_upgrade_test.ts",
];

// `deno task test` is this script with --checks: --help answers before any check runs.
const { _: files, checks } = argsOrExit({
  name: "test",
  summary: "Runs the tests (all, or [files]) on PostgreSQL. deno task test runs the format, lint and type " +
    "checks first (--checks); deno task test:only, only the tests.",
  options: {
    checks: { type: "boolean", help: "deno fmt --check, deno lint and deno check . first (deno task test)" },
  },
  positionals: "[files]",
  schema: z.object({ _: z.array(z.string()), checks: z.boolean().default(false) }),
  notes: [
    "The database: TEST_DATABASE_URL or DATABASE_URL when set; otherwise a throwaway cluster in a temp",
    "directory when PostgreSQL's initdb is installed; otherwise embedded PGlite (concurrency tests skipped).",
    "LG_SLOW_TESTS=1 also runs the slow soaks. With a server and pgbouncer installed, the concurrency,",
    "scheduler, multi-instance, notification and canary tests run once more through PgBouncer in",
    "transaction pooling (LG_TEST_NO_POOLER=1 skips that pass).",
  ],
});

if (checks) {
  for (const args of [["fmt", "--check"], ["lint"], ["check", "."]]) {
    const { code } = await new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "inherit" })
      .output();
    if (code !== 0) Deno.exit(code);
  }
}

async function pickServer(): Promise<{ url: string; label: string; cluster?: Cluster } | null> {
  const url = Deno.env.get("TEST_DATABASE_URL") || Deno.env.get("DATABASE_URL");
  if (url) return { url, label: "the server in TEST_DATABASE_URL/DATABASE_URL" };
  // TEST_FORCE_PGLITE=1 exercises the fallback on a machine that has PostgreSQL.
  const bin = Deno.env.get("TEST_FORCE_PGLITE") ? null : await findPgBin();
  if (!bin) return null;
  const cluster = await startCluster(bin, {
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
  });
  return { url: cluster.url, label: `a throwaway cluster (${bin})`, cluster };
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = "/" + name;
  return u.toString();
}

// Ctrl-C (or SIGTERM) stops the run, and still stops the cluster and the PgBouncer it started:
// pg_ctl detaches the server, so it would outlive us.
let interrupted = false;
let running: Deno.ChildProcess | null = null;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    if (!interrupted) console.log(`tests: ${signal}: stopping, then cleaning up`);
    interrupted = true;
    try {
      running?.kill("SIGTERM");
    } catch { /* already gone */ }
  });
}

const server = await pickServer();
// Tests never write into the checkout: anything that falls back to the
// default directories lands in a temp folder removed at the end.
const scratch = await Deno.makeTempDir({ prefix: "levelguard-tests-" });
const env: Record<string, string> = {
  LEVELGUARD_TEST: "1",
  LOG_DIR: `${scratch}/logs`,
  DATA_DIR: `${scratch}/data`,
};
if (Deno.env.get("LG_SLOW_TESTS")) env.LG_SLOW_TESTS = "1";
// Where the browser tests put their screenshots (default: under the system's temp directory).
const outputDir = Deno.env.get("TEST_OUTPUT_DIR");
if (outputDir) env.TEST_OUTPUT_DIR = outputDir;
if (server) {
  console.log(`tests: PostgreSQL server: ${server.label}`);
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${TEMPLATE}`);
  await admin.unsafe(`CREATE DATABASE ${TEMPLATE}`);
  const [{ server_version: version }] = await admin`SHOW server_version`;
  console.log(`tests: server version ${version}`);
  const template = postgres(withDatabase(server.url, TEMPLATE), { max: 1, onnotice: () => {} });
  await migrate(template);
  await template.end();
  await admin.end();
  env.LG_TEST_ADMIN_URL = server.url;
  env.LG_TEST_TEMPLATE = TEMPLATE;
} else {
  console.log("tests: no PostgreSQL server found; using embedded PGlite (concurrency tests are skipped)");
  env.LG_TEST_PGLITE = "1";
}

/** Runs `deno test` on `args` with `extra` on top of the run's environment. */
async function denoTest(args: string[], extra: Record<string, string> = {}): Promise<Deno.CommandStatus> {
  if (interrupted) return { success: false, code: 130, signal: null };
  running = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--parallel", ...args],
    // Hermetic: nothing exported in the developer's shell reaches the tests.
    env: hermeticEnv({ ...env, ...extra }),
    clearEnv: true,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  try {
    return await running.status;
  } finally {
    running = null;
  }
}

let status = await denoTest(files.length ? files : ["tests/"]);

// Once more through PgBouncer in transaction pooling (DB_PREPARE=0): the tests of what must hold
// across connections and instances. Skipped, saying so, when pgbouncer is not installed.
const pooledFiles = POOLED_FILES.filter((f) => files.length === 0 || files.some((g) => g.endsWith(f)));
const pgbouncer = findPgBouncer();
if (server && pooledFiles.length && !interrupted && !Deno.env.get("LG_TEST_NO_POOLER")) {
  if (!pgbouncer) {
    console.log(
      "tests: pgbouncer is not installed (apt-get install pgbouncer): the pass through it is skipped",
    );
  } else {
    const pooler = await startPgBouncer(pgbouncer, server.url);
    console.log(
      `tests: again through PgBouncer (transaction pooling, port ${pooler.port}): ${pooledFiles.join(" ")}`,
    );
    const pooled = await denoTest(pooledFiles.map((f) => `tests/${f}`), {
      LG_TEST_POOLED_PORT: String(pooler.port),
    });
    await pooler.stop();
    if (status.success) status = pooled;
  }
}

if (server) {
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`).catch(() => {});
  await admin.end();
  await server.cluster?.stop();
}
await Deno.remove(scratch, { recursive: true }).catch(() => {});
Deno.exit(interrupted ? 130 : status.code);

/**
 * Test runner: picks a PostgreSQL (TEST_DATABASE_URL / DATABASE_URL, else a
 * throwaway cluster when initdb is installed, else PGlite), builds a migrated
 * template database once, then runs `deno test` on every test file in
 * parallel. Each test copies the template (`CREATE DATABASE ... TEMPLATE`).
 */
import postgres from "postgres";
import { z } from "zod";
import { argsOrExit } from "../lib/cli/_args.ts";
import { migrate } from "../lib/migrate.ts";
import { type Cluster, findPgBin, startCluster } from "../lib/dev/cluster.ts";
import { hermeticEnv } from "./_process.ts";

const TEMPLATE = `levelguard_template_${Deno.pid}`;

const { _: files } = argsOrExit({
  name: "test",
  summary: "Format, lint and type checks, then every test (deno task test:only [files]: only the tests).",
  options: {},
  positionals: "[files]",
  schema: z.object({ _: z.array(z.string()) }),
  notes: [
    "The database: TEST_DATABASE_URL or DATABASE_URL when set; otherwise a throwaway cluster in a temp",
    "directory when PostgreSQL's initdb is installed; otherwise embedded PGlite (concurrency tests skipped).",
    "LG_SLOW_TESTS=1 also runs the slow soaks.",
  ],
});

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

const args = files.length ? files : ["tests/"];
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "-A", "--parallel", ...args],
  // Hermetic: nothing exported in the developer's shell reaches the tests.
  env: hermeticEnv(env),
  clearEnv: true,
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
const status = await child.status;

if (server) {
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`).catch(() => {});
  await admin.end();
  await server.cluster?.stop();
}
await Deno.remove(scratch, { recursive: true }).catch(() => {});
Deno.exit(status.code);

/**
 * Connection strings are checked before any client sees them, and never reach the output: a
 * malformed DATABASE_URL printed `Invalid URL: 'postgres://admin:TopSecret123@…'` from `start` and a
 * stack trace quoting it from the tasks.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { closedPort } from "./_fixture.ts";
import { runScript } from "./_process.ts";
import { databaseTarget, hasPassword, postgresUrlProblem, redactUrls } from "../lib/postgres_url.ts";

const PASSWORD = "TopSecret123";

/** Malformed URLs carrying PASSWORD, each with what the one line says about it. */
export const MALFORMED: [string, RegExp][] = [
  [`postgres://admin:${PASSWORD}@127.0.0.1:notaport/levelguard`, /port that is not a number from 1 to 65535/],
  [`postgres://admin:${PASSWORD}@127.0.0.1:99999/levelguard`, /port that is not a number from 1 to 65535/],
  [
    `postgres://admin:Top%zz${PASSWORD}@127.0.0.1:5432/levelguard`,
    /malformed %-escape in its user name or password/,
  ],
  [`postgres://admin:${PASSWORD}@[::1/levelguard`, /malformed host/],
  [`postgres://admin:${PASSWORD}@/levelguard`, /names no host/],
  [`postgres://admin:${PASSWORD} @db:5432/levelguard`, /space or a control character/],
  [`postgres://admin:${PASSWORD}@db:5432/levelguard?target_session_attrs=any`, /target_session_attrs/],
  [`mysql://admin:${PASSWORD}@db/levelguard`, /must start with postgres:\/\//],
];

Deno.test("every malformed URL form is told apart in a phrase that never repeats the URL", () => {
  for (const [url, why] of MALFORMED) {
    const problem = postgresUrlProblem(url);
    assert(problem !== null, url);
    assertMatch(problem, why);
    assert(!problem.includes(PASSWORD) && !problem.includes("admin"), problem);
  }
});

Deno.test("usable URLs pass: several hosts, IPv6, no password, query parameters, an empty port", () => {
  for (
    const url of [
      "postgres://lg:pw@db.example.com:5432/levelguard",
      "postgresql://lg@10.0.0.1,10.0.0.2:5433/levelguard?target_session_attrs=read-write",
      "postgres://lg@[::1]:5432/levelguard",
      "postgres://lg:p%40ss%25word@db/levelguard?sslmode=require&application_name=x",
      "postgres://lg@db:/levelguard",
      "postgres://db",
    ]
  ) assertEquals(postgresUrlProblem(url), null, url);
});

Deno.test("a password in a URL is recognised, and names a target without it", () => {
  assertEquals(hasPassword("postgres://lg:pw@db/x"), true);
  assertEquals(hasPassword("postgres://lg:p@ss@db/x"), true);
  assertEquals(hasPassword("postgres://lg@db/x"), false);
  assertEquals(hasPassword("postgres://lg:@db/x"), false);
  assertEquals(hasPassword("postgres://db:5432/x"), false);
  assertEquals(databaseTarget("postgres://lg:pw@db/x"), "db:5432");
  assertEquals(databaseTarget("postgres://lg:pw@a:1,b/x?sslmode=require"), "a:1,b:5432");
});

Deno.test("connection strings inside any text lose their user information", () => {
  assertEquals(
    redactUrls(`Invalid URL: 'postgres://admin:${PASSWORD}@127.0.0.1:notaport/db' (postgresql://u:p@w@h/db)`),
    "Invalid URL: 'postgres://***@127.0.0.1:notaport/db' (postgresql://***@h/db)",
  );
  assertEquals(redactUrls("postgres://db:5432/x"), "postgres://db:5432/x");
});

/** Every entry point that opens a database, with the arguments that get it that far. */
const ENTRY_POINTS: { script: string; name: string; args: string[]; env?: Record<string, string> }[] = [
  { script: "main.ts", name: "levelguard", args: [] },
  { script: "tasks/migrate.ts", name: "migrate", args: [] },
  { script: "tasks/seed.ts", name: "seed", args: ["--students", "1"] },
  { script: "tasks/scan.ts", name: "scan", args: [] },
  { script: "tasks/canary.ts", name: "canary", args: ["status"] },
  {
    script: "tasks/admin_password.ts",
    name: "admin:password",
    args: [],
    env: { SEED_ADMIN_PASSWORD: "x".repeat(12) },
  },
  // DATABASE_URL is the source when STAGING_FROM_URL is unset.
  {
    script: "tasks/staging_export.ts",
    name: "staging:export",
    args: [],
    env: {
      STAGING_TO_URL: `postgres://lg@127.0.0.1:${closedPort()}/staging`,
      STAGING_PASSWORD: "x".repeat(12),
    },
  },
];

/** Runs `jobs` two at a time (the machine's cores). */
async function inPairs<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < jobs.length; i += 2) {
    results.push(...await Promise.all(jobs.slice(i, i + 2).map((j) => j())));
  }
  return results;
}

Deno.test("a malformed DATABASE_URL stops every entry point in one line naming it, never with its password", async () => {
  const forms = MALFORMED.slice(0, 3);
  const runs = await inPairs(
    ENTRY_POINTS.flatMap(({ script, name, args, env }) =>
      forms.map(([url, why]) => async () => ({
        what: `${name} with ${url.replace(PASSWORD, "…")}`,
        name,
        why,
        out: await runScript(script, args, { DATABASE_URL: url, PORT: "0", HOST: "127.0.0.1", ...env }),
      }))
    ),
  );
  for (const { what, name, why, out } of runs) {
    assertEquals(out.code, 1, `${what}: ${out.stderr}`);
    const lines = out.stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, `${what}: ${out.stderr}`);
    assertMatch(lines[0], new RegExp(`^${name}: invalid configuration: DATABASE_URL `), what);
    assertMatch(lines[0], why, what);
    for (const secret of [PASSWORD, "zzTopSecret", "admin:Top"]) {
      assert(!(out.stdout + out.stderr).includes(secret), `${what}: ${secret} in the output`);
    }
  }
});

Deno.test("a malformed DATABASE_DIRECT_URL or DATABASE_REPLICA_URL stops start-up naming it, never with its password", async () => {
  const ok = `postgres://lg@127.0.0.1:${closedPort()}/levelguard`;
  const [url] = MALFORMED[0];
  for (
    const [name, extra] of [["DATABASE_DIRECT_URL", { DB_PREPARE: "0" }], [
      "DATABASE_REPLICA_URL",
      {},
    ]] as const
  ) {
    const out = await runScript("main.ts", [], { DATABASE_URL: ok, [name]: url, PORT: "0", ...extra });
    assertEquals(out.code, 1, out.stderr);
    assertMatch(
      out.stderr,
      new RegExp(`^levelguard: invalid configuration: ${name} has a port that is not a number`),
    );
    assertEquals(out.stderr.trimEnd().split("\n").length, 1, out.stderr);
    assert(!(out.stdout + out.stderr).includes(PASSWORD), name);
  }
});

/**
 * The k6 load scenarios (loadtest/*.js) and `deno task loadtest`: the scripts
 * are ES2019 (they must run on k6 0.48) and type-check against @types/k6;
 * when a k6 binary is at hand, each scenario passes a few seconds' run against
 * a test server and writes the plan's report; the task explains its usage.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import * as acorn from "acorn";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import {
  findK6,
  k6Environment,
  NO_K6,
  QUICK_ENV,
  type Scenario,
  SCENARIOS,
  serverEnv,
} from "../loadtest/run.ts";
import { randomSecret } from "../lib/secret_strength.ts";
import { seed } from "../lib/seed.ts";
import { hasServer } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";
import { runScript, startServer } from "./_process.ts";

const LOADTEST = fileURLToPath(new URL("../loadtest/", import.meta.url));

/** Every k6 script: the scenarios and their helper module. */
async function scripts(): Promise<string[]> {
  const files: string[] = [];
  for (const dir of [LOADTEST, join(LOADTEST, "lib")]) {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".js")) files.push(join(dir, entry.name));
    }
  }
  return files.sort();
}

// ---- ES2019 ----------------------------------------------------------------

function parseEs2019(source: string) {
  return acorn.parse(source, { ecmaVersion: 2019, sourceType: "module" });
}

Deno.test("every load script parses as ES2019, so k6 0.48 runs it; ?. and ?? do not", async () => {
  const files = await scripts();
  assertEquals(
    files.filter((f) => !f.includes("/lib/")).map((f) => f.slice(LOADTEST.length)),
    SCENARIOS.map((s) => `${s}.js`).sort(),
  );
  for (const file of files) {
    const source = await Deno.readTextFile(file);
    try {
      parseEs2019(source);
    } catch (err) {
      throw new Error(`${file.slice(LOADTEST.length)}: not ES2019: ${(err as Error).message}`);
    }
    assert(!/^\s*import\s[^;]*from\s+["']https?:/m.test(source), `${file}: remote import`);
  }
  for (const newer of ["const a = b?.c;", "const a = b ?? c;", "const n = 10_000;", "a ||= 1;"]) {
    let refused = false;
    try {
      parseEs2019(newer);
    } catch {
      refused = true;
    }
    assert(refused, `acorn at ES2019 must refuse ${newer}`);
  }
});

// ---- types -----------------------------------------------------------------

// k6's runtime has a console (the @types/k6 globals do not declare it).
const RUNTIME_D_TS = "/virtual/k6-runtime.d.ts";
const RUNTIME_SOURCE = `declare var console: {
  log(...data: unknown[]): void; info(...data: unknown[]): void; warn(...data: unknown[]): void;
  error(...data: unknown[]): void; debug(...data: unknown[]): void;
};`;

Deno.test("every load script type-checks against @types/k6", async () => {
  const k6Types = dirname(fileURLToPath(import.meta.resolve("@types/k6/package.json")));
  const options: ts.CompilerOptions = {
    allowJs: true,
    checkJs: true,
    noEmit: true,
    module: ts.ModuleKind.ESNext,
    target: ts.ScriptTarget.ES2019,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2019.d.ts"],
    types: [],
    skipLibCheck: true,
    paths: {
      "k6": [join(k6Types, "index.d.ts")],
      "k6/*": [join(k6Types, "*", "index.d.ts")],
    },
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, version, onError, create) =>
    name === RUNTIME_D_TS
      ? ts.createSourceFile(name, RUNTIME_SOURCE, version)
      : getSourceFile(name, version, onError, create);
  host.fileExists = (name) => name === RUNTIME_D_TS || fileExists(name);
  const files = await scripts();
  const program = ts.createProgram([...files, join(k6Types, "global.d.ts"), RUNTIME_D_TS], options, host);
  const errors = ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (!d.file || d.start === undefined) return text;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${d.file.fileName.replace(LOADTEST, "loadtest/")}:${line + 1}:${character + 1}: ${text}`;
  });
  assertEquals(errors, [], `type errors:\n${errors.join("\n")}`);
  // The k6 modules really resolved to the declarations (not to an implicit any).
  const resolved = program.getSourceFiles().map((f) => f.fileName);
  for (const module of ["index.d.ts", "http/index.d.ts", "metrics/index.d.ts", "execution/index.d.ts"]) {
    assert(resolved.includes(join(k6Types, module)), `@types/k6 ${module} was not loaded`);
  }
});

// ---- the task ----------------------------------------------------------------

Deno.test("deno task loadtest explains its usage, refuses unknown options and scenarios", async () => {
  const help = await runScript("loadtest/run.ts", ["--help"], {});
  assertEquals(help.code, 0, help.stderr);
  assertMatch(
    help.stdout,
    /^usage: deno task loadtest <progress_update\|coupling_enforcer\|health_dashboard/,
  );
  assertMatch(help.stdout, /--quick/);

  for (const args of [["--no-such-option"], [], ["nonsense"], ["security", "health_dashboard"]]) {
    const bad = await runScript("loadtest/run.ts", args, {});
    assertEquals(bad.code, 2, `${args}: ${bad.stderr}`);
    const [first, second] = bad.stderr.split("\n");
    assertMatch(first, /^loadtest: (Unknown option '--no-such-option'|name one scenario: progress_update, )/);
    assertMatch(second, /^usage: deno task loadtest /);
  }

  const badK6 = await runScript("loadtest/run.ts", ["security"], { K6_BIN: "/nonexistent/k6" });
  assertEquals(badK6.code, 1);
  assertEquals(badK6.stderr.trim(), "loadtest: K6_BIN=/nonexistent/k6 is not an executable file");
});

Deno.test("k6 is taken from K6_BIN, then PATH, then ../shared/tools/k6; without one the task says where to get it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "levelguard-k6-" });
  try {
    const fake = join(dir, "k6");
    await Deno.writeTextFile(fake, "#!/bin/sh\n");
    await Deno.chmod(fake, 0o755);
    const missing = join(dir, "missing", "k6");
    assertEquals(await findK6({ PATH: "" }, missing), null);
    assertEquals(await findK6({ PATH: `/nonexistent:${dir}` }, missing), fake);
    assertEquals(await findK6({ K6_BIN: fake, PATH: "" }, missing), fake);
    assertEquals(await findK6({ PATH: "" }, fake), fake);
    assertMatch(NO_K6, /https:\/\/k6\.io\/docs\/get-started\/installation\//);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--quick sets a few seconds with a handful of users, the caller's environment wins, the run's own settings win over both", () => {
  const env = k6Environment("progress_update", {
    quick: true,
    base: { VUS: "3", PATH: "/bin" },
    forced: { REPORT_DIR: "/tmp/r" },
  });
  assertEquals(env.VUS, "3");
  assertEquals(env.DURATION, QUICK_ENV.progress_update.DURATION);
  assertEquals(env.REPORT_DIR, "/tmp/r");
  assertEquals(k6Environment("coupling_enforcer", { quick: false, base: {}, forced: {} }).VUS, undefined);
  // The security scenario needs the limit; every other scenario exempts the load generator.
  const dirs = { data: "/d", logs: "/l", secret: randomSecret() };
  assertEquals("RATE_LIMIT_EXEMPT" in serverEnv("security", dirs), false);
  assertMatch(serverEnv("progress_update", dirs).RATE_LIMIT_EXEMPT, /127\.0\.0\.1\/32/);
});

// ---- running the scenarios -------------------------------------------------------

// The k6 the tests use: K6_BIN, PATH, or the machine's copy beside the repository.
const SHARED_K6 = fileURLToPath(new URL("../../shared/tools/k6", import.meta.url));
const k6 = await findK6({ K6_BIN: Deno.env.get("K6_BIN"), PATH: Deno.env.get("PATH") }, SHARED_K6)
  .catch(() => null);
if (!k6) {
  console.log(`loadtest_test: no k6 (K6_BIN, PATH, ${SHARED_K6}): the scenario runs are skipped`);
} else if (!hasServer) {
  console.log("loadtest_test: no PostgreSQL server: the scenario runs are skipped");
}

const ACCOUNTS = {
  adminEmail: "admin@staging.example.com",
  adminPassword: "staging_password",
  studentPassword: "staging_student_password",
};
const STUDENTS = 200;
const SECRET = randomSecret();
const REPORT_HEADINGS = [
  "# Load Testing Report",
  "**Date:** ",
  "**Duration:** ",
  "**Environment:** test",
  "**Users:** ",
  "**Spawn Rate:** ",
  "**Host:** http://127.0.0.1:",
  "## Scenario ",
  "## Performance Metrics",
  "| Metric | Target | Actual | Status |",
  "## Observations",
  "### Positive",
  "### Issues",
  "### Action Items",
  "## Recommendation",
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  markdown: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** `deno task loadtest <scenario> --quick` against the server; returns its output and the report it wrote. */
async function runScenario(
  scenario: Scenario,
  server: { url: string; lines: string[] },
  reportDir: string,
  extra: Record<string, string> = {},
) {
  const url = server.url;
  const before = new Set<string>();
  for await (const e of Deno.readDir(reportDir)) before.add(e.name);
  const run = await runScript("loadtest/run.ts", [scenario, "--quick"], {
    K6_BIN: k6!,
    BASE_URL: url,
    REPORT_DIR: reportDir,
    ENVIRONMENT: "test",
    ADMIN_EMAIL: ACCOUNTS.adminEmail,
    ADMIN_PASSWORD: ACCOUNTS.adminPassword,
    STUDENT_PASSWORD: ACCOUNTS.studentPassword,
    // The seeded students; the coupling scenario keeps its own 1..100.
    ...scenario === "coupling_enforcer" ? {} : { STUDENTS: String(STUDENTS) },
    JWT_SECRET: SECRET,
    // Timing belongs to benchmarks: the suite shares the CPU with every other test file, so latency
    // targets are relaxed (which also caps the verdict at CONDITIONAL); correctness targets stay.
    LATENCY_TARGET_FACTOR: "20",
    MIN_OFFERED_SHARE: "0.3",
    ...extra,
  }, 90_000);
  const written: string[] = [];
  for await (const e of Deno.readDir(reportDir)) if (!before.has(e.name)) written.push(e.name);
  const md = written.find((n) => n.endsWith(".md"));
  const json = written.find((n) => n.endsWith(".json"));
  const where = `${scenario}: exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}\n` +
    `server:\n${server.lines.slice(-15).join("\n")}`;
  assert(md && json, `${where}\nwrote ${written.join(", ")}`);
  assertMatch(md, new RegExp(`^${scenario}-\\d{8}T\\d{6}Z\\.md$`));
  assertEquals(json, md.replace(/\.md$/, ".json"));
  assert(run.stdout.includes(`loadtest: ${scenario} report: ${join(reportDir, md)}`), where);
  return {
    ...run,
    where,
    markdown: await Deno.readTextFile(join(reportDir, md)),
    json: JSON.parse(await Deno.readTextFile(join(reportDir, json))),
  } as Run & { where: string };
}

function assertPassedReport(run: Run & { where: string }) {
  assertEquals(run.code, 0, run.where);
  for (const heading of REPORT_HEADINGS) assert(run.markdown.includes(heading), `report lacks ${heading}`);
  assertMatch(run.markdown, /\*\*Ready for production: (YES|CONDITIONAL)\*\*/);
  assert(!run.markdown.includes("❌"), run.markdown);
  assert(run.json.metrics.http_reqs.values.count > 0, "the raw JSON holds k6's metrics");
}

const count = (run: Run, metric: string) => run.json.metrics[metric]?.values.count as number | undefined;

/** Passes and fails of the checks whose name matches, from the raw summary's group tree. */
function checkCounts(run: Run, name: RegExp) {
  const total = { passes: 0, fails: 0 };
  // deno-lint-ignore no-explicit-any
  const walk = (group: any) => {
    for (const c of group.checks ?? []) {
      if (name.test(c.name)) {
        total.passes += c.passes;
        total.fails += c.fails;
      }
    }
    for (const g of group.groups ?? []) walk(g);
  };
  walk(run.json.root_group);
  return total;
}

/**
 * Runs progress_update.js with 2 users for 3 s against a server whose every login answers 503 with
 * Retry-After; returns the logins it received and the k6 summary.
 */
async function againstSheddingServer(extra: Record<string, string>) {
  let logins = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    if (new URL(req.url).pathname !== "/api/v1/auth/login") return new Response(null, { status: 404 });
    logins++;
    return Response.json({ title: "Service Unavailable", status: 503 }, {
      status: 503,
      headers: { "Retry-After": "1", "Content-Type": "application/problem+json" },
    });
  });
  const reportDir = await Deno.makeTempDir({ prefix: "levelguard-loadtest-shed-" });
  try {
    const out = await new Deno.Command(k6!, {
      args: ["run", "--quiet", join(LOADTEST, "progress_update.js")],
      env: {
        K6_NO_USAGE_REPORT: "true",
        BASE_URL: `http://127.0.0.1:${server.addr.port}`,
        REPORT_DIR: reportDir,
        VUS: "2",
        RAMP_RATE: "100",
        DURATION: "3s",
        WAIT_MIN: "0.2",
        WAIT_MAX: "0.3",
        ...extra,
      },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const name = [...Deno.readDirSync(reportDir)].map((e) => e.name).find((n) => n.endsWith(".json"));
    assert(name, new TextDecoder().decode(out.stderr));
    const json = JSON.parse(await Deno.readTextFile(join(reportDir, name)));
    return {
      code: out.code,
      logins,
      json,
      markdown: await Deno.readTextFile(join(reportDir, name.replace(/json$/, "md"))),
    };
  } finally {
    await server.shutdown();
    await Deno.remove(reportDir, { recursive: true });
  }
}

Deno.test({
  name:
    "by default each user logs in once and never retries, as the plan's clients do; LOGIN_RETRIES retries",
  ignore: !k6,
}, async () => {
  const plan = await againstSheddingServer({});
  assertEquals(plan.logins, 2, "one login per user, a 503 not retried");
  assertEquals(plan.code, 99, "a threshold failed");
  const metric = (run: typeof plan, name: string) =>
    run.json.metrics[name]?.values.count as number | undefined;
  assertEquals(metric(plan, "login_failures"), 2);
  assertEquals(metric(plan, "login_retries"), undefined);
  // Each task the tokenless users would have run counts, visibly.
  assert(metric(plan, "requests_without_login")! >= 4, JSON.stringify(plan.json.metrics));
  assertEquals(plan.json.metrics["http_req_failed"].values.passes, 2, "the two 503s are failed requests");
  assertMatch(plan.markdown, /\| Failed logins \| 0 \(.*\) \| 2 \| ❌ \|/);
  assertMatch(plan.markdown, /\| Tasks not run for want of a login \| 0 \(.*\) \| \d+ \| ❌ \|/);

  const retrying = await againstSheddingServer({ LOGIN_RETRIES: "2" });
  assert(retrying.logins >= 6, `${retrying.logins} logins: each user tries 3 times, then again`);
  assert(metric(retrying, "login_retries")! >= 4);
  assertEquals(
    retrying.json.metrics["http_req_failed"].values.passes,
    0,
    "a 503 is an answer to this client",
  );
});

Deno.test({
  name: "each load scenario passes a few seconds' run against a test server and writes the plan's report",
  ignore: !k6 || !hasServer,
}, (t) =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    await seed(db.sql, { students: STUDENTS, desyncRate: 0, ...ACCOUNTS });
    const reportDir = await Deno.makeTempDir({ prefix: "levelguard-loadtest-reports-" });
    // The servers run as `deno task loadtest` runs them: exempt from the limit except for security.
    const envFor = (scenario: Scenario) => ({
      DATABASE_URL: db.url,
      ...serverEnv(scenario, { data: dataDir, logs: logDir, secret: SECRET }),
    });
    try {
      const exempt = await startServer(envFor("progress_update"));
      try {
        await t.step("progress_update", async () => {
          const run = await runScenario("progress_update", exempt, reportDir);
          assertPassedReport(run);
          assertMatch(run.markdown, /## Scenario 1: Progress update storm/);
          assertMatch(run.markdown, /Offered load: ≈ [\d.]+ req\/s .*achieved: [\d.]+ req\/s/);
          assert(count(run, "http_reqs{name:progress_update}")! > 0);
        });

        await t.step("coupling_enforcer, whose XP accounting matches the ledger", async () => {
          const [{ last }] = await db.sql<{ last: number }[]>`
            SELECT coalesce(max(id), 0) AS last FROM xp_events`;
          const run = await runScenario("coupling_enforcer", exempt, reportDir);
          assertPassedReport(run);
          assertEquals(count(run, "ledger_verified"), 1);
          assertEquals(count(run, "final_checks"), 1);
          assertEquals(count(run, "desyncs"), 0);
          assertEquals(count(run, "xp_unaccounted"), 0);
          // The database agrees: the users' acknowledged awards plus setup's and teardown's 1-XP probes.
          const [ledger] = await db.sql<{ n: number; xp: number }[]>`
            SELECT count(*)::int AS n, coalesce(sum(xp_after - xp_before), 0)::int AS xp
            FROM xp_events WHERE id > ${last} AND source = 'api'`;
          assertEquals(ledger.n, count(run, "changes_acknowledged")! + 2 * 100);
          assertEquals(ledger.xp, count(run, "xp_acknowledged")! + 2 * 100);
        });

        await t.step("health_dashboard, with the dashboard page behind its sign-in form", async () => {
          const run = await runScenario("health_dashboard", exempt, reportDir);
          assertPassedReport(run);
          assert(count(run, "http_reqs{name:health_status}")! > 0);
          // Signed in through the form (GET + POST), then pages and their live-panel refreshes, all checked.
          assert(count(run, "http_reqs{name:dashboard_login}")! >= 2, run.where);
          assert(count(run, "http_reqs{name:dashboard_page}")! > 0, run.where);
          assert(count(run, "http_reqs{name:dashboard_partial}")! > 0, run.where);
          assert(checkCounts(run, /^dashboard (page|partial|sign-in)/).passes > 0, run.where);
          assertMatch(run.markdown, /Dashboard page \(\/admin\/health, signed in through the form\): [1-9]/);
        });

        await t.step("security fails, saying why, when the server exempts its client", async () => {
          // A lower expected limit keeps the (futile) burst short: 2 × 20 + 20 requests.
          const run = await runScenario("security", exempt, reportDir, { RATE_LIMIT: "20" });
          assertEquals(run.code, 1, run.where);
          assertMatch(run.markdown, /\*\*Ready for production: NO\*\*/);
          // Everything but the rate limit held: it is the exemption that failed the run, not the server.
          for (const phase of ["auth", "injection", "body"]) {
            const checks = run.json.metrics[`checks{phase:${phase}}`].values;
            assert(checks.passes > 0 && checks.fails === 0, `${phase}: ${JSON.stringify(checks)}`);
          }
          assertMatch(run.markdown, /\| 429s in the rate-limit burst \| .* \| 0 \| ❌ \|/);
          assertMatch(run.stderr, /loadtest: failed: security \(k6 exit 99: a target was missed\)/);
        });
      } finally {
        await exempt.stop();
      }

      const limited = await startServer(envFor("security"));
      try {
        await t.step("security, whose burst meets 429s and nothing else does", async () => {
          const run = await runScenario("security", limited, reportDir);
          assertPassedReport(run);
          assert(count(run, "http_reqs{phase:rate_limit,status:429}")! > 0, "the burst met 429s");
          for (const phase of ["auth", "injection", "body"]) {
            assertEquals(count(run, `http_reqs{phase:${phase},status:429}`), 0, phase);
            assert(count(run, `http_reqs{phase:${phase}}`)! > 0, `${phase} ran`);
          }
          assertEquals(run.json.metrics["checks{phase:rate_limit}"].values.fails, 0);
          // Setup's budget probe and its three logins are tagged too.
          assertEquals(count(run, "http_reqs{phase:setup}"), 4);
          // The injection strings reach the Idempotency-Key header as well.
          assertEquals(checkCounts(run, /Idempotency-Key/).passes, 2);
        });
      } finally {
        await limited.stop();
      }
    } finally {
      await Deno.remove(reportDir, { recursive: true }).catch(() => {});
    }
  }));

/**
 * `deno task loadtest <scenario> [--quick]`: runs a k6 load scenario
 * (`loadtest/<scenario>.js`) and prints where its report went.
 *
 * Against `BASE_URL` when it is set; otherwise against a server of its own: a
 * throwaway PostgreSQL cluster, migrated and seeded with 10,000 students, and
 * `main.ts` on a free loopback port, exempt from the rate limit except for
 * the security scenario (which needs the limit). k6 comes from `K6_BIN`,
 * `PATH`, or `../shared/tools/k6` beside the repository.
 */
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { SEEDED_ACCOUNTS, type SeededCluster, seededCluster } from "../tests/support/seeded_cluster.ts";
import { type ServerProcess, startServer } from "../tests/support/server_process.ts";
import { argsOrExit } from "../lib/args.ts";

/** The scenarios, one k6 script each under loadtest/. */
export const SCENARIOS = ["progress_update", "coupling_enforcer", "health_dashboard", "security"] as const;
/** One scenario's name. */
export type Scenario = typeof SCENARIOS[number];

/** Where to read how to install k6. */
export const K6_INSTALL_URL = "https://k6.io/docs/get-started/installation/";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The k6 binary the project's machines keep beside the repository (`../shared/tools/k6`). */
export const SHARED_K6 = fileURLToPath(new URL("../../shared/tools/k6", import.meta.url));

/** The script of a scenario. */
export function scriptOf(scenario: Scenario): string {
  return join(ROOT, "loadtest", `${scenario}.js`);
}

/**
 * `--quick`: a few seconds with a handful of users, so the whole machinery
 * (scripts, thresholds, report) runs end to end; the verdict is at most
 * CONDITIONAL. Short waits keep the request count (and so the throughput
 * estimate) meaningful; the offered-load share is lower because a 6 s run
 * spends a larger part of it logging in and ramping.
 */
export const QUICK_ENV: Record<Scenario, Record<string, string>> = {
  progress_update: {
    VUS: "10",
    RAMP_RATE: "10",
    DURATION: "6s",
    WAIT_MIN: "0.1",
    WAIT_MAX: "0.3",
    MIN_OFFERED_SHARE: "0.6",
  },
  coupling_enforcer: { VUS: "10", RAMP_RATE: "10", DURATION: "6s" },
  health_dashboard: {
    VUS: "5",
    RAMP_RATE: "5",
    DURATION: "6s",
    WAIT_MIN: "0.2",
    WAIT_MAX: "0.6",
    MIN_OFFERED_SHARE: "0.6",
  },
  // One checklist run is the plan's size already (it must fit in one rate-limit window).
  security: { VUS: "1", ITERATIONS: "1" },
};

/** The seeded server's accounts (the scripts' defaults, so a tester's staging seeded the same way works too). */
export const SEEDED = { students: 10_000, ...SEEDED_ACCOUNTS };

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

/**
 * The k6 to run: `K6_BIN` (which must then be an executable), else the first
 * `k6` on `PATH`, else `fallback`; null when there is none.
 */
export async function findK6(
  env: { K6_BIN?: string; PATH?: string },
  fallback: string = SHARED_K6,
): Promise<string | null> {
  if (env.K6_BIN) {
    if (await isExecutable(env.K6_BIN)) return env.K6_BIN;
    throw new Error(`K6_BIN=${env.K6_BIN} is not an executable file`);
  }
  for (const dir of (env.PATH ?? "").split(":").filter(Boolean)) {
    const candidate = join(dir, "k6");
    if (await isExecutable(candidate)) return candidate;
  }
  return await isExecutable(fallback) ? fallback : null;
}

/** The one line printed when no k6 is found. */
export const NO_K6 =
  `no k6 found (K6_BIN, PATH, ../shared/tools/k6); install it: ${K6_INSTALL_URL}, or set K6_BIN to its path`;

/**
 * The environment of a k6 run: the quick defaults (when asked), overridden by
 * the caller's environment, overridden by what the run must use.
 */
export function k6Environment(
  scenario: Scenario,
  options: { quick: boolean; base: Record<string, string>; forced: Record<string, string> },
): Record<string, string> {
  return {
    ...(options.quick ? QUICK_ENV[scenario] : {}),
    ...options.base,
    K6_NO_USAGE_REPORT: "true",
    ...options.forced,
  };
}

/** Report files (`<scenario>-<UTC stamp>.md`) written into `dir` since `since` (ms). */
export async function reportsSince(dir: string, scenario: Scenario, since: number): Promise<string[]> {
  const found: string[] = [];
  const pattern = new RegExp(`^${scenario}-\\d{8}T\\d{6}Z\\.md$`);
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !pattern.test(entry.name)) continue;
      const info = await Deno.stat(join(dir, entry.name));
      if ((info.mtime?.getTime() ?? 0) >= since - 1000) found.push(join(dir, entry.name));
    }
  } catch { /* no directory: no report */ }
  return found.sort();
}

// ---- a server of its own ----------------------------------------------------

/** The server's settings for a scenario: the rate limit applies to the security scenario only. */
export function serverEnv(
  scenario: Scenario,
  dirs: { data: string; logs: string; secret: string },
): Record<string, string> {
  return {
    JWT_SECRET: dirs.secret,
    DATA_DIR: dirs.data,
    LOG_DIR: dirs.logs,
    LOG_REQUESTS: "0",
    SCAN_ENABLED: "0",
    // Two connections per core (see loadtest/bench/update.ts): on 2 cores more only contend.
    DB_POOL_MAX: "4",
    ...(scenario === "security"
      ? { RATE_LIMIT_PER_MINUTE: "100" }
      : { RATE_LIMIT_PER_MINUTE: "100", RATE_LIMIT_EXEMPT: "127.0.0.1/32,::1/128" }),
  };
}

// ---- the task -----------------------------------------------------------------

async function main(): Promise<number> {
  const args = argsOrExit({
    name: "loadtest",
    summary: "Runs a k6 load scenario (loadtest/<scenario>.js) and writes its report into REPORT_DIR " +
      "(default reports/): against BASE_URL, or a server of its own on a throwaway PostgreSQL " +
      "seeded with 10,000 students.",
    positionals: "<progress_update|coupling_enforcer|health_dashboard|security|all>",
    options: {
      quick: {
        type: "boolean",
        help: "a few seconds with a handful of users (smoke run; verdict at most CONDITIONAL)",
      },
    },
    schema: z.object({
      _: z.array(z.string()).refine(
        (a) => a.length === 1 && ([...SCENARIOS, "all"] as string[]).includes(a[0]),
        { message: `name one scenario: ${SCENARIOS.join(", ")} or all` },
      ),
      quick: z.boolean().default(false),
    }),
    notes: [
      "environment: BASE_URL (a running Levelguard; unset: start one), K6_BIN (else k6 on PATH, else",
      "../shared/tools/k6), REPORT_DIR (default reports), and the scripts' own variables (VUS, RAMP_RATE,",
      "DURATION, STUDENTS, ADMIN_EMAIL, ADMIN_PASSWORD, ...; see loadtest/README.md), passed to k6.",
      "Against BASE_URL the server must exempt this machine from the rate limit (RATE_LIMIT_EXEMPT),",
      "except for the security scenario, which needs the limit. Exit 1 when a scenario misses a target.",
    ],
  });
  const scenarios: Scenario[] = args._[0] === "all" ? [...SCENARIOS] : [args._[0] as Scenario];

  let k6: string | null;
  try {
    k6 = await findK6({ K6_BIN: Deno.env.get("K6_BIN"), PATH: Deno.env.get("PATH") });
  } catch (err) {
    console.error(`loadtest: ${(err as Error).message}`);
    return 1;
  }
  if (!k6) {
    console.error(`loadtest: ${NO_K6}`);
    return 1;
  }

  const reportDir = resolve(Deno.cwd(), Deno.env.get("REPORT_DIR") || "reports");
  await Deno.mkdir(reportDir, { recursive: true });
  const shown = (path: string) => {
    const rel = relative(Deno.cwd(), path);
    return rel.startsWith("..") ? path : rel;
  };

  // Ctrl-C reaches k6 and the server too (same process group); this process waits and cleans up.
  let running: Deno.ChildProcess | null = null;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    try {
      running?.kill("SIGINT");
    } catch { /* gone */ }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const baseUrl = Deno.env.get("BASE_URL");
  let seeded: SeededCluster | null = null;
  const scratch: string[] = [];
  const failed: string[] = [];
  try {
    let databaseUrl = "";
    if (!baseUrl) {
      const started = performance.now();
      console.error(`loadtest: starting a throwaway PostgreSQL, seeding ${SEEDED.students} students`);
      seeded = await seededCluster({ students: SEEDED.students });
      if (!seeded) {
        console.error(
          "loadtest: set BASE_URL to a running Levelguard, or install PostgreSQL (initdb) so it can start one",
        );
        return 1;
      }
      databaseUrl = seeded.url;
      console.error(`loadtest: database ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }

    for (const scenario of scenarios) {
      if (interrupted) break;
      let server: ServerProcess | undefined;
      const forced: Record<string, string> = { REPORT_DIR: reportDir };
      const base = Deno.env.toObject();
      if (!baseUrl) {
        const data = await Deno.makeTempDir({ prefix: "levelguard-loadtest-data-" });
        const logs = await Deno.makeTempDir({ prefix: "levelguard-loadtest-logs-" });
        scratch.push(data, logs);
        const secret = `loadtest-${crypto.randomUUID()}-${crypto.randomUUID()}`;
        server = await startServer({
          DATABASE_URL: databaseUrl,
          ...serverEnv(scenario, { data, logs, secret }),
        });
        console.error(
          `loadtest: ${scenario}: server ${server.url}${scenario === "security" ? " (rate limit on)" : ""}`,
        );
        Object.assign(forced, {
          BASE_URL: server.url,
          ADMIN_EMAIL: SEEDED.adminEmail,
          ADMIN_PASSWORD: SEEDED.adminPassword,
          STUDENT_EMAIL: "student1@academy.example.com",
          STUDENT_PASSWORD: SEEDED.studentPassword,
          JWT_SECRET: secret,
        });
        delete base.INSTRUCTOR_EMAIL;
        delete base.INSTRUCTOR_PASSWORD;
        if (!base.ENVIRONMENT) {
          base.ENVIRONMENT = `local (deno task loadtest: throwaway PostgreSQL, ${
            SEEDED.students.toLocaleString("en")
          } students, main.ts on 127.0.0.1, DB_POOL_MAX=4)`;
        }
        if (scenario !== "coupling_enforcer" && !base.STUDENTS) base.STUDENTS = String(SEEDED.students);
      }
      const since = Date.now();
      try {
        running = new Deno.Command(k6, {
          args: ["run", "--no-usage-report", scriptOf(scenario)],
          cwd: ROOT,
          env: k6Environment(scenario, { quick: args.quick, base, forced }),
          clearEnv: true,
          stdin: "null",
          stdout: "inherit",
          stderr: "inherit",
        }).spawn();
        const { code } = await running.status;
        running = null;
        const reports = await reportsSince(reportDir, scenario, since);
        for (const md of reports) {
          console.log(
            `loadtest: ${scenario} report: ${shown(md)} (raw: ${shown(md.replace(/\.md$/, ".json"))})`,
          );
        }
        if (!reports.length) {
          console.error(`loadtest: ${scenario}: k6 wrote no report into ${shown(reportDir)}`);
        }
        if (code !== 0 || !reports.length) {
          failed.push(`${scenario} (k6 exit ${code}${code === 99 ? ": a target was missed" : ""})`);
        }
      } finally {
        await server?.stop();
      }
    }
  } catch (err) {
    console.error(`loadtest: ${(err as Error).message}`);
    return 1;
  } finally {
    await seeded?.stop();
    for (const dir of scratch) await Deno.remove(dir, { recursive: true }).catch(() => {});
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  if (interrupted) {
    console.error("loadtest: interrupted");
    return 130;
  }
  if (failed.length) {
    console.error(`loadtest: failed: ${failed.join("; ")}; see the report`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());

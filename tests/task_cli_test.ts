/**
 * Every task answers --help (usage, exit 0) and refuses an unknown option or
 * a bad value (one line plus the usage, exit 2), and neither touches anything:
 * the database they are pointed at stays empty. Through `deno task` too where
 * the task line matters: `dev` (under --watch an exit would only wait for a
 * file change) and `test` (its checks must not run before --help answers).
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { withTestApp } from "./_fixture.ts";
import { hermeticEnv, runScript } from "./_process.ts";

const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));

/** Each task's entry script (the last `deno run ... <script>` of its command). */
const TASKS: [string, string][] = Object.entries(config.tasks as Record<string, string>).map(
  ([name, command]) => {
    const scripts = [...command.matchAll(/deno run (?:-\S+ )*(\S+\.ts)/g)].map((m) => m[1]);
    return [name, scripts.at(-1)!];
  },
);

const BAD_VALUES: Record<string, string[]> = {
  seed: ["--students", "many"],
  "admin:password": ["--email", "not-an-email"],
  "admin:create": ["--email", "not-an-email"],
  "bench:seed": ["--sizes", "ten"],
  "bench:scan": ["--sizes", "0"],
  "bench:update": ["--seconds", "soon"],
  "bench:login-storm": ["--shape", "scenario9"],
  canary: ["--window", "2h"],
};

Deno.test("every task in deno.json has an entry script", () => {
  assert(TASKS.length >= 12, `${TASKS.length} tasks`);
  for (const [name, script] of TASKS) assert(script, `${name} runs no script`);
});

Deno.test("every task answers --help and refuses unknown options and bad values, touching nothing", (t) =>
  withTestApp({ empty: true }, async ({ db, dataDir, logDir }) => {
    const env = {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      LOG_DIR: logDir,
      SEED_ADMIN_PASSWORD: "x".repeat(12),
    };
    for (const [name, script] of TASKS) {
      await t.step(name, async () => {
        const help = await runScript(script, ["--help"], env);
        assertEquals(help.code, 0, `${name} --help: ${help.stderr}`);
        assertMatch(help.stdout, /^usage: deno task /);

        const unknown = await runScript(script, ["--no-such-option"], env);
        assertEquals(unknown.code, 2, `${name} --no-such-option: ${unknown.stdout}${unknown.stderr}`);
        const [first, second] = unknown.stderr.split("\n");
        assertMatch(first, /Unknown option '--no-such-option'/);
        assertMatch(second, /^usage: /);

        if (BAD_VALUES[name]) {
          const bad = await runScript(script, BAD_VALUES[name], env);
          assertEquals(bad.code, 2, `${name} ${BAD_VALUES[name]}: ${bad.stderr}`);
          assertMatch(bad.stderr.split("\n")[0], new RegExp(`^${name}: ${BAD_VALUES[name][0]}: `));
        }
      });
    }
    const [{ tables }] = await db.sql`
      SELECT count(*)::int AS tables FROM information_schema.tables WHERE table_schema = 'public'`;
    assertEquals(tables, 0, "no task created anything");
    assertEquals([...Deno.readDirSync(dataDir)].length, 0, "nothing written to DATA_DIR");
  }));

Deno.test("a task on an unmigrated database says to migrate first, in one line", () =>
  withTestApp({ empty: true }, async ({ db, logDir }) => {
    for (const script of ["tasks/scan.ts", "tasks/admin_password.ts"]) {
      const out = await runScript(script, [], {
        DATABASE_URL: db.url,
        LOG_DIR: logDir,
        SEED_ADMIN_PASSWORD: "x".repeat(12),
      });
      assertEquals(out.code, 1, out.stderr);
      assertEquals(out.stderr.trim().split("\n").length, 1, out.stderr);
      assertMatch(
        out.stderr,
        /the database is not migrated \(pending: 0001_core_schema\.sql, .*\); run deno task migrate first/,
      );
    }
  }));

/**
 * `deno task <name> ...args` in the repository, in a process group of its own: on
 * `timeoutMs` the whole group is killed (a watcher left waiting would outlive its task).
 */
async function denoTask(name: string, args: string[], timeoutMs = 30_000) {
  const started = performance.now();
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "task", name, ...args],
    cwd: new URL("..", import.meta.url),
    env: hermeticEnv({ NO_COLOR: "1" }),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    Deno.kill(-child.pid, "SIGKILL");
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return {
    code: out.code,
    timedOut,
    ms: performance.now() - started,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("deno task dev --help and --bogus end at once (0 and 2) instead of waiting under --watch", async () => {
  const help = await denoTask("dev", ["--help"]);
  assertEquals([help.code, help.timedOut], [0, false], help.stderr);
  assertMatch(help.stdout, /^usage: deno task dev\n/);
  const bogus = await denoTask("dev", ["--bogus"]);
  assertEquals([bogus.code, bogus.timedOut], [2, false], bogus.stderr);
  assertMatch(bogus.stderr, /^dev: Unknown option '--bogus'\nusage: deno task dev\n/m);
  assert(!/Watcher/.test(bogus.stderr + help.stderr), "no watcher was started");
});

Deno.test("deno task test --help answers before any format, lint or type check runs", async () => {
  const help = await denoTask("test", ["--help"]);
  assertEquals([help.code, help.timedOut], [0, false], help.stderr);
  assertMatch(help.stdout, /^usage: deno task test \[files\]/);
  // deno fmt/lint/check print "Checked N files" (or "Check <file>") when they run.
  assert(!/Checked \d+ files?|^Check /m.test(help.stderr), help.stderr);
  assert(help.ms < 15_000, `answered after ${Math.round(help.ms)} ms`);
});

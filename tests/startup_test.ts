import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { hasServer } from "./_db.ts";
import { closedPort, withTestApp } from "./_fixture.ts";
import { runScript } from "./_process.ts";

async function startMain(env: Record<string, string>) {
  const out = await runScript("main.ts", [], { PORT: "0", HOST: "127.0.0.1", SCAN_ENABLED: "0", ...env });
  return { code: out.code, stderr: out.stderr.trim() };
}

Deno.test("bad configuration stops startup with one line naming the variable", async () => {
  const { code, stderr } = await startMain({ DB_POOL_MAX: "lots" });
  assertEquals(code, 1);
  assertEquals(stderr.split("\n").length, 1, stderr);
  assertMatch(stderr, /^levelguard: invalid configuration: DB_POOL_MAX /);
});

Deno.test("a database that is down stops startup with one line", async () => {
  const { code, stderr } = await startMain({
    DATABASE_URL: `postgres://nobody@127.0.0.1:${closedPort()}/none`,
    DB_CONNECT_TIMEOUT_S: "2",
  });
  assertEquals(code, 1);
  assertEquals(stderr.split("\n").length, 1, stderr);
  assertMatch(stderr, /^levelguard: database unreachable: /);
});

Deno.test(
  { name: "a tampered, already-applied migration stops startup with one line", ignore: !hasServer },
  () =>
    withTestApp(async ({ db, dataDir, logDir }) => {
      await db.sql`UPDATE schema_migrations SET checksum = 'tampered' WHERE name = '0001_core_schema.sql'`;
      const { code, stderr } = await startMain({
        DATABASE_URL: db.url,
        JWT_SECRET: "x".repeat(40),
        DATA_DIR: dataDir,
        LOG_DIR: logDir,
      });
      assertEquals(code, 1);
      assertEquals(stderr.split("\n").length, 1, stderr);
      assert(
        stderr.startsWith("levelguard: migration 0001_core_schema.sql was changed after it was applied"),
        stderr,
      );
    }),
);

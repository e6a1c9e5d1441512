import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { createTestDatabase, hasServer } from "./_db.ts";

async function startMain(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    env: { PORT: "0", HOST: "127.0.0.1", SCAN_ENABLED: "0", ...env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  return { code: out.code, stderr };
}

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
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
  async () => {
    const db = await createTestDatabase({ max: 1 });
    try {
      await db.sql`UPDATE schema_migrations SET checksum = 'tampered' WHERE name = '0001_core_schema.sql'`;
      const { code, stderr } = await startMain({ DATABASE_URL: db.url, JWT_SECRET: "x".repeat(40) });
      assertEquals(code, 1);
      assertEquals(stderr.split("\n").length, 1, stderr);
      assert(
        stderr.startsWith("levelguard: migration 0001_core_schema.sql was changed after it was applied"),
        stderr,
      );
    } finally {
      await db.close();
    }
  },
);

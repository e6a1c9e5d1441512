import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { hasServer } from "./_db.ts";
import { closedPort, until, withTestApp } from "./_fixture.ts";
import { seedConsistent } from "./_integrity.ts";
import { LOAD_SECRET } from "./_load.ts";
import { runScript, type ServerProcess, startServer } from "./_process.ts";

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

Deno.test("TRUST_PROXY=1 stops startup with one line saying what to write instead", async () => {
  const { code, stderr } = await startMain({ TRUST_PROXY: "1" });
  assertEquals(code, 1);
  assertEquals(stderr.split("\n").length, 1, stderr);
  assertMatch(
    stderr,
    /^levelguard: invalid configuration: TRUST_PROXY "1" would believe any client; .*TRUST_PROXY=127\.0\.0\.1\/32/,
  );
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
        JWT_SECRET: LOAD_SECRET,
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

Deno.test("the database refusing our credentials stops startup with one line saying so", () =>
  withTestApp(async ({ db }) => {
    const url = new URL(db.url);
    url.username = "nobody_at_all";
    const { code, stderr } = await startMain({ DATABASE_URL: url.toString(), DB_CONNECT_TIMEOUT_S: "2" });
    assertEquals(code, 1);
    assertEquals(stderr.split("\n").length, 1, stderr);
    assertMatch(stderr, /^levelguard: (the database refused our credentials|database unreachable): /);
  }));

Deno.test(
  { name: "a port in use stops startup with one line naming it", ignore: !hasServer },
  () =>
    withTestApp(async ({ db }) => {
      const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const port = (taken.addr as Deno.NetAddr).port;
        const { code, stderr } = await startMain({
          DATABASE_URL: db.url,
          JWT_SECRET: LOAD_SECRET,
          PORT: String(port),
        });
        assertEquals([code, stderr], [1, `levelguard: port ${port} is in use; set PORT`]);
      } finally {
        taken.close();
      }
    }),
);

Deno.test("a DATA_DIR that cannot be created or written stops startup with one line", async () => {
  const file = await Deno.makeTempFile();
  const readOnly = await Deno.makeTempDir();
  try {
    const blocked = await startMain({ DATA_DIR: `${file}/data` });
    assertEquals(blocked.code, 1);
    assertEquals(
      blocked.stderr,
      `levelguard: DATA_DIR ${file}/data cannot be created: a file is in the way; set DATA_DIR`,
    );
    // Root writes anywhere a mode allows; sysfs refuses even root.
    const dir = Deno.uid() === 0 ? "/sys/kernel" : readOnly;
    if (Deno.uid() !== 0) await Deno.chmod(readOnly, 0o500);
    const unwritable = await startMain({ DATA_DIR: dir });
    assertEquals(unwritable.code, 1);
    assertEquals(
      unwritable.stderr,
      `levelguard: DATA_DIR ${dir} is not writable: permission denied; set DATA_DIR`,
    );
  } finally {
    await Deno.chmod(readOnly, 0o700).catch(() => {});
    await Deno.remove(file);
    await Deno.remove(readOnly, { recursive: true });
  }
});

Deno.test({
  name: "an unwritable LOG_DIR is one warning, and checks still run and are recorded",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db, dataDir }) => {
    await seedConsistent(db.sql, 20);
    const server = await startServer({
      DATABASE_URL: db.url,
      JWT_SECRET: LOAD_SECRET,
      DATA_DIR: dataDir,
      LOG_DIR: Deno.uid() === 0 ? "/sys/kernel/levelguard-logs" : "/proc/levelguard-logs",
      SCAN_ENABLED: "1",
      SCAN_CRON: "0 0 1 1 *",
    });
    try {
      await until("the startup check ran and is in the database", async () => {
        const [{ n }] = await db
          .sql`SELECT count(*)::int AS n FROM integrity_checks WHERE outcome = 'success'`;
        return n === 1;
      });
    } finally {
      assertEquals(await server.stop(), 0);
    }
    const warnings = server.lines.filter((l) => l.includes("LOG_DIR") && l.includes("not writable"));
    assertEquals(warnings.length, 1, server.lines.join("\n"));
    assert(server.lines.every((l) => !l.includes("    at ")), "no stack trace");
  }));

Deno.test({
  name: "embedded: a port in use on the first start creates nothing; the next start prints the credentials " +
    "once it listens; a second process and a task on the same DATA_DIR stop at once, naming the first",
  ignore: !hasServer,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "levelguard-embedded-" });
  const logDir = await Deno.makeTempDir({ prefix: "levelguard-embedded-logs-" });
  const env = { DATA_DIR: dataDir, LOG_DIR: logDir, SCAN_ENABLED: "0", LOG_REQUESTS: "0" };
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let first: ServerProcess | undefined;
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const busy = await runScript("main.ts", [], { ...env, HOST: "127.0.0.1", PORT: String(port) });
    assertEquals(busy.code, 1);
    assertEquals(busy.stderr.trim(), `levelguard: port ${port} is in use; set PORT`);
    assert(!busy.stdout.includes("password"), "no credentials were printed for data that may be lost");

    first = await startServer(env);
    const printed = first.lines.join("\n");
    assertMatch(printed, /admin login: admin@levelguard\.local\n\s+password:\s+\S{8,}/);
    const listening = first.lines.findIndex((l) => l.includes('"msg":"listening"'));
    const credentials = first.lines.findIndex((l) => l.includes("password:"));
    assert(listening >= 0 && credentials > listening, "credentials come after the server listens");
    const pid = first.child.pid;

    const second = await runScript("main.ts", [], { ...env, HOST: "127.0.0.1", PORT: "0" });
    assertEquals(second.code, 1);
    assertEquals(
      second.stderr.trim(),
      `levelguard: DATA_DIR ${dataDir} is in use by another Levelguard process (pid ${pid}); stop it or set DATABASE_URL`,
    );
    const scan = await runScript("tasks/scan.ts", [], env);
    assertEquals(scan.code, 1);
    assertMatch(
      scan.stderr.trim(),
      new RegExp(
        `^scan: DATA_DIR \\S+ is in use by another Levelguard process \\(pid ${pid}\\); run the check through the running server \\(POST /api/v1/health/check-now\\)`,
      ),
    );
    assertEquals(scan.stderr.trim().split("\n").length, 1);
  } finally {
    taken.close();
    if (first) assertEquals(await first.stop(), 0);
    // After a clean stop the next process may open the directory, and nothing is printed again.
    const again = await startServer(env);
    assertEquals(again.lines.some((l) => l.includes("password:")), false);
    await again.stop();
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(logDir, { recursive: true });
  }
});

Deno.test("a port in use is found before anything is created: no DATA_DIR, no LOG_DIR, no embedded database", async () => {
  const scratch = await Deno.makeTempDir({ prefix: "levelguard-port-first-" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const dataDir = `${scratch}/data`;
    const logDir = `${scratch}/logs`;
    // Embedded (nothing to reach), and with a DATABASE_URL that nobody answers: the port is first.
    const unreachable = `postgres://nobody@127.0.0.1:${closedPort()}/none`;
    const modes: Record<string, string>[] = [{}, { DATABASE_URL: unreachable, DB_CONNECT_TIMEOUT_S: "1" }];
    for (const env of modes) {
      const { code, stderr } = await startMain({
        ...env,
        PORT: String(port),
        DATA_DIR: dataDir,
        LOG_DIR: logDir,
      });
      assertEquals([code, stderr], [1, `levelguard: port ${port} is in use; set PORT`]);
      assertEquals([...Deno.readDirSync(scratch)].map((e) => e.name), [], "nothing was created");
    }
  } finally {
    taken.close();
    await Deno.remove(scratch, { recursive: true });
  }
});

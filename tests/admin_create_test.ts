/** `deno task admin:create`: the first admin of a production database (which has no seed data). */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { hasServer } from "./_db.ts";
import { type App, withTestApp } from "./_fixture.ts";
import { DENO_RUN, hermeticEnv, runScript } from "./_process.ts";

const SCRIPT = "tasks/admin_create.ts";

async function login(app: App, email: string, password: string) {
  const res = await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  await res.body?.cancel();
  return res.status;
}

/** Runs the task with `input` on stdin (not a terminal: one line is read). */
async function withStdin(env: Record<string, string>, args: string[], input: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, SCRIPT, ...args],
    env: hermeticEnv(env),
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test({
  name: "admin:create makes an admin on a database without one, in one line, and refuses a duplicate email",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db, app, logDir }) => {
    const env = { DATABASE_URL: db.url, LOG_DIR: logDir };
    // No admin yet: admin:password says how to make one.
    const none = await runScript("tasks/admin_password.ts", [], {
      ...env,
      SEED_ADMIN_PASSWORD: "whatever-123",
    });
    assertEquals([none.code, none.stderr.trim()], [
      1,
      "admin:password: there is no admin account; create one with deno task admin:create --email E",
    ]);

    const created = await runScript(
      SCRIPT,
      ["--email", "First.Admin@Example.test", "--name", "First Admin"],
      {
        ...env,
        SEED_ADMIN_PASSWORD: "first-admin-pw-1",
      },
    );
    assertEquals(created.code, 0, created.stderr);
    const [user] = await db.sql<{ id: number; role: string; full_name: string; is_active: boolean }[]>`
      SELECT id, role, full_name, is_active FROM users`;
    assertEquals([created.stdout, created.stderr], [
      `admin:create: admin First.Admin@Example.test created (id ${user.id}); sign in at /admin/login\n`,
      "",
    ]);
    assertEquals([user.role, user.full_name, user.is_active], ["ADMIN", "First Admin", true]);
    assert(!(created.stdout + created.stderr).includes("first-admin-pw-1"), "the password is not printed");
    assertEquals(await login(app, "first.admin@example.test", "first-admin-pw-1"), 200);

    // Piped (not a terminal): one line from stdin.
    const piped = await withStdin(env, ["--email", "second@example.test"], "typed-on-stdin-2\n");
    assertEquals(piped.code, 0, piped.stderr);
    assertEquals(await login(app, "second@example.test", "typed-on-stdin-2"), 200);

    // The same email in another case: refused in one line, nothing changed.
    const duplicate = await runScript(SCRIPT, ["--email", "FIRST.ADMIN@example.TEST"], {
      ...env,
      SEED_ADMIN_PASSWORD: "another-pw-123",
    });
    assertEquals([duplicate.code, duplicate.stdout, duplicate.stderr], [
      1,
      "",
      "admin:create: an account with email FIRST.ADMIN@example.TEST already exists; nothing changed\n",
    ]);
    assertEquals(await login(app, "first.admin@example.test", "first-admin-pw-1"), 200);
    assertEquals(await login(app, "first.admin@example.test", "another-pw-123"), 401);

    const short = await withStdin(env, ["--email", "third@example.test"], "short\n");
    assertEquals(short.code, 1);
    assertMatch(short.stderr, /^admin:create: the password must be at least 8 characters\n$/);
    const [{ n }] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM users`;
    assertEquals(n, 2, "neither the duplicate nor the short password wrote a row");
  }));

Deno.test("admin:create takes no password argument, needs --email, and explains itself with --help", async () => {
  // Refused before any database is opened (none is configured here).
  const given = await runScript(SCRIPT, ["--email", "a@example.test", "--password", "secret-in-argv-1"], {});
  assertEquals(given.code, 2);
  assertMatch(given.stderr, /^admin:create: Unknown option '--password'\nusage: deno task admin:create/);
  assert(
    !(given.stdout + given.stderr).includes("secret-in-argv-1"),
    "a password given anyway is not echoed",
  );

  const missing = await runScript(SCRIPT, [], {});
  assertEquals(missing.code, 2);
  assertMatch(missing.stderr, /^admin:create: --email: is required\nusage: /);

  const help = await runScript(SCRIPT, ["--help"], {});
  assertEquals(help.code, 0, help.stderr);
  assertMatch(help.stdout, /^usage: deno task admin:create \[options\]\n/);
  assertMatch(help.stdout, /--email E/);
  assertMatch(help.stdout, /--name N/);
  assertMatch(help.stdout, /SEED_ADMIN_PASSWORD/);
  assert(!/--password/.test(help.stdout), "no password option");
});

/** `deno task admin:password`: the way back in when the printed password is lost. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { seed } from "../lib/seed.ts";
import { DENO_RUN, hermeticEnv } from "./_process.ts";
import { hasServer } from "./_db.ts";
import { type App, withTestApp } from "./_fixture.ts";
import { runScript } from "./_process.ts";

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
    args: [...DENO_RUN, "tasks/admin_password.ts", ...args],
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
  name: "admin:password sets a new password from SEED_ADMIN_PASSWORD or stdin, printing nothing secret",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db, app, logDir }) => {
    await seed(db.sql, {
      students: 3,
      desyncRate: 0,
      adminEmail: "admin@levelguard.local",
      adminPassword: "the-old-password",
      studentPassword: "student-password",
    });
    const env = { DATABASE_URL: db.url, LOG_DIR: logDir };
    const fromEnv = await runScript("tasks/admin_password.ts", [], {
      ...env,
      SEED_ADMIN_PASSWORD: "from-the-env-1",
    });
    assertEquals(fromEnv.code, 0, fromEnv.stderr);
    assertEquals(fromEnv.stdout.trim(), "admin:password: the password of admin@levelguard.local was changed");
    assert(!(fromEnv.stdout + fromEnv.stderr).includes("from-the-env-1"), "the password is not printed");
    assertEquals(await login(app, "admin@levelguard.local", "the-old-password"), 401);
    assertEquals(await login(app, "admin@levelguard.local", "from-the-env-1"), 200);

    const piped = await withStdin(env, ["--email", "ADMIN@levelguard.local"], "typed-on-stdin-2\n");
    assertEquals(piped.code, 0, piped.stderr);
    assertEquals(await login(app, "admin@levelguard.local", "typed-on-stdin-2"), 200);

    const short = await withStdin(env, [], "short\n");
    assertEquals(short.code, 1);
    assertMatch(short.stderr, /^admin:password: the password must be at least 8 characters/);

    const stranger = await runScript("tasks/admin_password.ts", ["--email", "nobody@levelguard.local"], {
      ...env,
      SEED_ADMIN_PASSWORD: "whatever-123",
    });
    assertEquals([stranger.code, stranger.stderr.trim()], [
      1,
      "admin:password: no admin with email nobody@levelguard.local",
    ]);

    await db
      .sql`INSERT INTO users (email, hashed_password, role) VALUES ('second@levelguard.local', 'x', 'ADMIN')`;
    const ambiguous = await runScript("tasks/admin_password.ts", [], {
      ...env,
      SEED_ADMIN_PASSWORD: "whatever-123",
    });
    assertEquals(ambiguous.code, 1);
    assertMatch(ambiguous.stderr, /there are 2 admins; choose one with --email/);
    assertEquals(await login(app, "admin@levelguard.local", "typed-on-stdin-2"), 200, "nothing changed");
  }));

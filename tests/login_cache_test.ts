/**
 * Kept password checks in the login API (lib/verified_passwords.ts): a login
 * of an account whose password was just checked costs no derivation, the
 * per-account throttle still comes first, and a change of the account
 * (password, deactivation, role) ends the kept check at once on every
 * instance: the next login on either app derives again, without waiting for
 * any notification or poll.
 */
import { assertEquals } from "./_assert.ts";
import { hashPassword } from "../lib/password.ts";
import { verifyToken } from "../lib/tokens.ts";
import type { TestDatabase } from "./_db.ts";
import { type App, TEST_TOKEN_KEY, type TestApp, withTestApp } from "./_fixture.ts";

const PASSWORD = "correct horse battery staple";

async function addAdmin(db: TestDatabase, email: string): Promise<number> {
  const [row] = await db.sql<{ id: number }[]>`
    INSERT INTO users (email, hashed_password, role)
    VALUES (${email}, ${await hashPassword(PASSWORD)}, 'ADMIN') RETURNING id`;
  return row.id;
}

async function login(app: App, email: string, password = PASSWORD) {
  const res = await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const body = await res.json();
  const principal = res.status === 200 ? await verifyToken(TEST_TOKEN_KEY, body.access_token) : null;
  return { status: res.status, role: principal?.role, epoch: principal?.epoch };
}

const derivations = (deps: TestApp["deps"]) => deps.passwordChecks.verified.derivations;

Deno.test("a kept check answers later logins without a derivation; the throttle still comes first", () =>
  withTestApp(async ({ db, app, deps }) => {
    await addAdmin(db, "kept@example.test");
    for (let i = 0; i < 4; i++) assertEquals((await login(app, "kept@example.test")).status, 200);
    assertEquals([derivations(deps), deps.passwordChecks.verified.hits], [1, 3]);
    // Wrong passwords are never answered from it: each costs a derivation, then the account is throttled.
    for (let i = 0; i < 5; i++) {
      assertEquals((await login(app, "kept@example.test", `wrong-${i}`)).status, 401);
    }
    assertEquals(derivations(deps), 6);
    assertEquals((await login(app, "kept@example.test")).status, 429, "throttled before the kept check");
    assertEquals(derivations(deps), 6);
  }));

Deno.test("a kept check ends at once on every instance when the password, the activation or the role changes", () =>
  withTestApp(async ({ db, app, deps, another }) => {
    const second = await another();
    const apps = [{ app, deps }, second];
    const changes = [
      {
        what: "password",
        change: async (id: number) =>
          await db.sql`UPDATE users SET hashed_password = ${await hashPassword(
            "a new password",
          )} WHERE id = ${id}`,
        after: { status: 401 },
      },
      {
        what: "deactivation",
        change: async (id: number) => await db.sql`UPDATE users SET is_active = false WHERE id = ${id}`,
        after: { status: 401 },
      },
      {
        what: "role",
        change: async (id: number) => await db.sql`UPDATE users SET role = 'INSTRUCTOR' WHERE id = ${id}`,
        after: { status: 200, role: "INSTRUCTOR", epoch: 1 },
      },
    ];
    for (const { what, change, after } of changes) {
      const email = `${what}@example.test`;
      const id = await addAdmin(db, email);
      for (const { app } of apps) {
        assertEquals(await login(app, email), { status: 200, role: "ADMIN", epoch: 0 }, what);
        assertEquals((await login(app, email)).status, 200, what);
      }
      const before = apps.map(({ deps }) => derivations(deps));
      const hits = apps.map(({ deps }) => deps.passwordChecks.verified.hits);
      await change(id);
      // No wait: the epoch each login reads with the hash is already the new one.
      for (const [i, { app, deps }] of apps.entries()) {
        const got = await login(app, email);
        assertEquals(got.status, after.status, `${what}, instance ${i + 1}`);
        if (after.role) assertEquals([got.role, got.epoch], [after.role, after.epoch], what);
        assertEquals(derivations(deps), before[i] + 1, `${what}: instance ${i + 1} derived again`);
        assertEquals(deps.passwordChecks.verified.hits, hits[i], `${what}: nothing answered from memory`);
      }
    }
    // The new password works on both, at the new epoch.
    for (const { app } of apps) {
      assertEquals(await login(app, "password@example.test", "a new password"), {
        status: 200,
        role: "ADMIN",
        epoch: 1,
      });
    }
  }));

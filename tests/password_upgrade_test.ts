/**
 * Older password hashes are upgraded on the next successful login
 * (lib/password_upgrade.ts), without signing the user out anywhere: the
 * update is flagged as a rehash, which migration 0015's trigger lets keep the
 * account's epoch. Any other hash change still moves it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { transaction } from "../lib/connection.ts";
import type { Sql } from "../lib/db.ts";
import { hashPassword, needsRehash, PARAMS, verifyPassword } from "../lib/password.ts";
import { storeRehash } from "../lib/password_upgrade.ts";
import { createSession } from "../lib/sessions.ts";
import { type App, bearer, withTestApp } from "./_fixture.ts";

const PASSWORD = "correct horse battery staple";
const OLD_PARAMS = { N: 2 ** 14, r: 8, p: 1 };
const CURRENT = `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$`;

async function addAdmin(sql: Sql, email: string, hash: string): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    INSERT INTO users (email, hashed_password, role) VALUES (${email}, ${hash}, 'ADMIN') RETURNING id`;
  return row.id;
}

async function account(sql: Sql, id: number) {
  const [row] = await sql<{ hash: string; epoch: number; sessions: number }[]>`
    SELECT hashed_password AS hash, auth_epoch AS epoch,
      (SELECT count(*)::int FROM admin_sessions s WHERE s.user_id = u.id) AS sessions
    FROM users u WHERE id = ${id}`;
  return row;
}

async function status(app: App, path: string, init: RequestInit = {}): Promise<number> {
  const res = await app.request(path, init);
  await res.body?.cancel();
  return res.status;
}

const login = (app: App, email: string, password = PASSWORD) =>
  status(app, "/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });

Deno.test("a stored hash with older parameters is upgraded on a successful login; the account's tokens and sessions survive", () =>
  withTestApp(async ({ db, app, deps, another }) => {
    const old = await hashPassword(PASSWORD, { params: OLD_PARAMS });
    assert(needsRehash(old));
    const id = await addAdmin(db.sql, "old@example.test", old);
    const token = await bearer(id, "ADMIN", 600, 0);
    const { token: cookie } = await createSession(db.sql, id, 600, 0);
    const signedIn = async () => [
      await status(app, "/api/v1/health/status", { headers: token }),
      await status(app, "http://localhost/admin/health", { headers: { cookie: `lg_session=${cookie}` } }),
    ];
    assertEquals(await signedIn(), [200, 200]);

    // A wrong password upgrades nothing.
    assertEquals(await login(app, "old@example.test", "wrong"), 401);
    await deps.passwordChecks.upgrades.settled();
    assertEquals((await account(db.sql, id)).hash, old);

    assertEquals(await login(app, "old@example.test"), 200);
    await deps.passwordChecks.upgrades.settled();
    const upgraded = await account(db.sql, id);
    assert(upgraded.hash.startsWith(CURRENT), upgraded.hash);
    assert(!needsRehash(upgraded.hash));
    assert(await verifyPassword(PASSWORD, upgraded.hash));
    assertEquals([upgraded.epoch, upgraded.sessions], [0, 1], "same epoch, the session kept");
    assertEquals(deps.passwordChecks.upgrades.upgraded, 1);

    // Compared with the database again (what the poll or LISTEN does): the token and the cookie still work.
    await deps.accounts.refresh();
    assertEquals(await signedIn(), [200, 200]);
    // Another instance, which has kept nothing, checks the new hash: the password still opens it.
    const second = await another();
    assertEquals(await login(second.app, "old@example.test"), 200);
    assertEquals(await login(second.app, "old@example.test", "wrong"), 401);
    await second.deps.passwordChecks.upgrades.settled();
    assertEquals(second.deps.passwordChecks.upgrades.upgraded, 0, "nothing left to upgrade");
  }));

Deno.test("only a flagged change of the parameters keeps the epoch; a password changed meanwhile is never overwritten", () =>
  withTestApp(async ({ db }) => {
    const old = await hashPassword(PASSWORD, { params: OLD_PARAMS });
    const id = await addAdmin(db.sql, "flag@example.test", old);
    const flagged = (update: (tx: Sql) => Promise<unknown>) =>
      transaction(db.sql, async (tx) => {
        await tx`SELECT set_config('levelguard.password_rehash', 'on', true)`;
        await update(tx as unknown as Sql);
      });

    // The same parameters (a new salt): a new password as far as the trigger knows.
    const sameParams = await hashPassword("another password", { params: OLD_PARAMS });
    await flagged((tx) => tx`UPDATE users SET hashed_password = ${sameParams} WHERE id = ${id}`);
    assertEquals((await account(db.sql, id)).epoch, 1);

    // New parameters together with another change (the role): the epoch moves.
    const strong = await hashPassword(PASSWORD);
    await flagged((tx) =>
      tx`UPDATE users SET hashed_password = ${strong}, role = 'INSTRUCTOR' WHERE id = ${id}`
    );
    assertEquals((await account(db.sql, id)).epoch, 2);

    // Unflagged, new parameters: the epoch moves (the flag lives only in its own transaction).
    await flagged(async () => {});
    await db.sql`UPDATE users SET hashed_password = ${old}, role = 'ADMIN' WHERE id = ${id}`;
    assertEquals((await account(db.sql, id)).epoch, 3);

    // The upgrade itself: new parameters only, flagged: the epoch stays.
    assertEquals(await storeRehash(db.sql, id, old, strong), true);
    assertEquals(await account(db.sql, id), { hash: strong, epoch: 3, sessions: 0 });

    // Written over the checked hash only: a password changed since then stays.
    const changed = await hashPassword("changed meanwhile");
    await db.sql`UPDATE users SET hashed_password = ${changed} WHERE id = ${id}`;
    assertEquals(await storeRehash(db.sql, id, old, await hashPassword(PASSWORD)), false);
    assertEquals((await account(db.sql, id)).hash, changed);
  }));

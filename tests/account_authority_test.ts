/**
 * Authority follows the account, at once, on every instance: two real
 * Levelguard processes on one database; an admin is deactivated, demoted or
 * given a new password (in SQL, or by `deno task admin:password`, as an
 * operator would), and within a second neither instance honours that admin's
 * API token, dashboard cookie or live stream, and nothing the token asks for
 * is written. In the pass through PgBouncer the second instance has no
 * DATABASE_DIRECT_URL: it cannot LISTEN and polls.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { Unauthenticated } from "../lib/errors.ts";
import { hashPassword } from "../lib/password.ts";
import { createSession } from "../lib/sessions.ts";
import { hasServer, pooledPort } from "./_db.ts";
import { dropLicenses } from "./_integrity.ts";
import { type Deployment, EventStream, type Instance, until, withDeployment } from "./_instances.ts";
import { type App, bearer, withTestApp } from "./_fixture.ts";
import { runScript } from "./_process.ts";
import { ADMIN_ID } from "./_students.ts";

/** Real processes and sockets: the sanitizers cannot follow them. */
const PROCESSES = { ignore: !hasServer, sanitizeOps: false, sanitizeResources: false };

const PASSWORD = "admin-password-1";

/** `Bearer …` from a real sign-in on `instance` (the token carries the account's epoch). */
async function signIn(instance: Instance, email: string, password = PASSWORD): Promise<string> {
  const res = await fetch(`${instance.url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return `Bearer ${body.access_token}`;
}

/** The status and problem detail of an API call with `authorization`. */
async function call(
  instance: Instance,
  authorization: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; detail?: string }> {
  const res = await instance.api(path, {
    method,
    authorization,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const detail = res.headers.get("content-type") === "application/problem+json"
    ? JSON.parse(text).detail
    : undefined;
  return { status: res.status, detail };
}

/** GET /admin/health with a session cookie, without following the redirect. */
async function dashboard(
  instance: Instance,
  cookie: string,
): Promise<{ status: number; location: string | null }> {
  const res = await fetch(`${instance.url}/admin/health`, {
    headers: { Cookie: `lg_session=${cookie}` },
    redirect: "manual",
  });
  await res.body?.cancel();
  return { status: res.status, location: res.headers.get("location") };
}

/** Everything an admin's token and cookie could do, as each instance answers now. */
async function everything(d: Deployment, instance: Instance, authorization: string, cookie: string) {
  const refused = { status: 401, detail: "Invalid or expired token" };
  assertEquals(await call(instance, authorization, "GET", "/api/v1/health/status"), refused, "status");
  assertEquals(await call(instance, authorization, "POST", "/api/v1/health/check-now"), refused, "check-now");
  assertEquals(
    await call(instance, authorization, "POST", "/api/v1/health/violations/repair", { dry_run: false }),
    refused,
    "repair",
  );
  assertEquals(
    await call(instance, authorization, "PUT", "/api/v1/admin/rollout", { percent: 50, reason: "not me" }),
    refused,
    "rollout",
  );
  // Refused by the guard, before apply_xp's own check of the actor.
  assertEquals(
    await call(instance, authorization, "POST", "/api/v1/specializations/progress/update", {
      student_id: 1,
      specialization_id: "PLAYER",
      xp_change: 5,
    }),
    refused,
    "progress update",
  );
  const page = await dashboard(instance, cookie);
  assertEquals(page.status, 302, "the dashboard cookie");
  assert(page.location?.startsWith("/admin/login"), `${page.location}`);
  // Nothing any of them asked for was done.
  assertEquals(await written(d), NOTHING, "no repair, rollout change or award written");
}

/** The rows a repair, a rollout change or an award writes. */
async function written(d: Deployment) {
  const [rows] = await d.direct<{ audits: number; rollouts: number; awards: number }[]>`
    SELECT (SELECT count(*) FROM audit_log)::int AS audits,
           (SELECT count(*) FROM app_settings WHERE updated_by IS NOT NULL)::int AS rollouts,
           (SELECT count(*) FROM xp_events WHERE created_at > now() - interval '1 hour'
              AND actor_id IN (SELECT id FROM users WHERE email LIKE '%@authority.test'))::int AS awards`;
  return rows;
}

const NOTHING = { audits: 0, rollouts: 0, awards: 0 };

const CHANGES = [
  {
    name: "deactivated",
    change: (d: Deployment, id: number) => d.direct`UPDATE users SET is_active = false WHERE id = ${id}`,
  },
  {
    name: "demoted to INSTRUCTOR",
    change: (d: Deployment, id: number) => d.direct`UPDATE users SET role = 'INSTRUCTOR' WHERE id = ${id}`,
  },
  {
    name: "given a new password by deno task admin:password",
    change: async (d: Deployment, _id: number, email: string) => {
      const out = await runScript("tasks/admin_password.ts", ["--email", email], {
        DATABASE_URL: d.db.url,
        SEED_ADMIN_PASSWORD: "a-new-password-2",
      });
      assertEquals(out.code, 0, out.stderr);
    },
  },
] as const;

Deno.test({
  ...PROCESSES,
  name: "an admin deactivated, demoted or given a new password loses its token, cookie and live stream " +
    `on both instances within a second${pooledPort ? " (the second one polling)" : ""}`,
}, () =>
  withDeployment({}, async (d) => {
    await d.seed(30);
    await dropLicenses(d.direct, 7); // something a repair would really change
    const hash = await hashPassword(PASSWORD);
    const [a, b] = await d.start(2, {}, { direct: [true, false] });
    if (pooledPort) {
      assert(b.logs().some((l) => /the accounts poll/.test(String(l.msg))), "B cannot LISTEN: it polls");
    }
    assertEquals(await written(d), NOTHING);
    const [{ licenses }] = await d.direct<{ licenses: number }[]>`
      SELECT count(*)::int AS licenses FROM user_licenses`;

    for (const [n, { name, change }] of CHANGES.entries()) {
      const email = `admin${n}@authority.test`;
      const [{ id }] = await d.direct<{ id: number }[]>`
        INSERT INTO users (email, hashed_password, role) VALUES (${email}, ${hash}, 'ADMIN') RETURNING id`;
      // Signed in on A; its token and cookie work on B (which now holds the account).
      const token = await signIn(a, email);
      const { token: cookie } = await createSession(d.db.sql, id, 600);
      assertEquals((await call(b, token, "GET", "/api/v1/health/status")).status, 200, name);
      assertEquals((await dashboard(b, cookie)).status, 200, name);
      const stream = await EventStream.open(`${b.url}/admin/health/events`, {
        Cookie: `lg_session=${cookie}`,
      });
      try {
        assertEquals((await stream.next(2000)).event, "hello");

        await change(d, id, email);
        await until(
          `B refuses the token of the admin ${name}`,
          async () => (await call(b, token, "GET", "/api/v1/health/status")).status === 401,
          1000,
        );
        await stream.until((e) => e.event === "session-ended", 1000);
        for (const instance of [a, b]) await everything(d, instance, token, cookie);
      } finally {
        await stream.close();
      }
      const [{ still }] = await d.direct<
        { still: number }[]
      >`SELECT count(*)::int AS still FROM user_licenses`;
      assertEquals(still, licenses, "the refused repair repaired nothing");
    }

    // The accounts as they are now still work as such: a new sign-in is honoured for what it is.
    const demoted = await signIn(b, "admin1@authority.test");
    assertEquals((await call(b, demoted, "GET", "/api/v1/health/status")).status, 403, "an instructor now");
    const renewed = await signIn(b, "admin2@authority.test", "a-new-password-2");
    assertEquals((await call(a, renewed, "GET", "/api/v1/health/status")).status, 200, "the new password");
  }));

// ---- an instance without LISTEN (in this process: apps built by the fixture poll) --------------

Deno.test({
  name:
    "an instance that cannot LISTEN polls: an admin deactivated in SQL loses token, cookie and live stream " +
    "on both apps within a second",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 5 }, async ({ db, app, deps, another }) => {
    const second = await another();
    assertEquals([deps.accounts.mode, second.deps.accounts.mode], ["poll", "poll"]);
    const auth = await bearer(ADMIN_ID, "ADMIN");
    const { token: cookie } = await createSession(db.sql, ADMIN_ID, 600);
    const headers = { cookie: `lg_session=${cookie}` };
    const status = async (a: App) => {
      const res = await a.request("/api/v1/health/status", { headers: auth });
      await res.body?.cancel();
      return res.status;
    };
    assertEquals([await status(app), await status(second.app)], [200, 200], "both hold the account");
    const events = await app.request("http://localhost/admin/health/events", { headers });
    assertEquals(events.status, 200);
    const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let ended = false;
    (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: "", done: true }));
        if (done) break;
        text += value;
      }
      ended = true;
    })();
    try {
      await until("the stream said hello", () => text.includes("event: hello"), 2000);
      await db.sql`UPDATE users SET is_active = false WHERE id = ${ADMIN_ID}`;
      await until(
        "both apps refuse the token",
        async () => await status(app) === 401 && await status(second.app) === 401,
        1000,
      );
      // Ended by the change itself, not at the next keep-alive (15 s away).
      await until("the stream ended, telling the page why", () => ended, 1000);
      assert(text.includes("event: session-ended"), text);
      const page = await second.app.request("http://localhost/admin/health", { headers });
      assertEquals(page.status, 302, "the cookie opens nothing");
    } finally {
      await reader.cancel().catch(() => {});
    }
  }));

// ---- the epoch in the database --------------------------------------------------------------

Deno.test({
  name:
    "the epoch moves on with activation, role and password only, never back, ending the account's sessions; " +
    "a sign-in whose account changed meanwhile opens none",
  ignore: !hasServer,
}, () =>
  withTestApp(async ({ db }) => {
    const [{ id }] = await db.sql<{ id: number }[]>`
      INSERT INTO users (email, hashed_password, role) VALUES ('e@example.test', 'h0', 'ADMIN') RETURNING id`;
    const state = async () => {
      const [row] = await db.sql<{ epoch: number; sessions: number }[]>`
        SELECT auth_epoch AS epoch, (SELECT count(*)::int FROM admin_sessions WHERE user_id = ${id}) AS sessions
        FROM users WHERE id = ${id}`;
      return row;
    };
    await createSession(db.sql, id, 600, 0);
    await db
      .sql`UPDATE users SET full_name = 'Someone', updated_at = now(), hashed_password = 'h0' WHERE id = ${id}`;
    assertEquals(await state(), { epoch: 0, sessions: 1 }, "a name, a timestamp, the same hash: no change");
    await db.sql`UPDATE users SET hashed_password = 'h1' WHERE id = ${id}`;
    assertEquals(await state(), { epoch: 1, sessions: 0 });
    // An operator's "sign out everywhere", and an attempt to revive old tokens.
    await db.sql`UPDATE users SET auth_epoch = auth_epoch + 1 WHERE id = ${id}`;
    await db.sql`UPDATE users SET auth_epoch = 0 WHERE id = ${id}`;
    assertEquals((await state()).epoch, 3, "never back");

    // The password was checked at epoch 3; the account moves on before the session is opened.
    await db.sql`UPDATE users SET role = 'INSTRUCTOR' WHERE id = ${id}`;
    await assertRejects(() => createSession(db.sql, id, 600, 3), Unauthenticated);
    await db.sql`UPDATE users SET role = 'ADMIN' WHERE id = ${id}`;
    await assertRejects(() => createSession(db.sql, id, 600, 4), Unauthenticated); // an epoch already past
    await createSession(db.sql, id, 600, 5);
    await db.sql`UPDATE users SET is_active = false WHERE id = ${id}`;
    assertEquals(await state(), { epoch: 6, sessions: 0 });
    await assertRejects(() => createSession(db.sql, id, 600), Unauthenticated); // inactive
  }));

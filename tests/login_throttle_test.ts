/**
 * Per-account sign-in throttling: the policy's numbers, then the login API on
 * one app (tests/multi_instance_test.ts has it across real instances).
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./_assert.ts";
import { authenticate, LOGIN_FAILED } from "../lib/auth.ts";
import { Throttled, Unauthenticated } from "../lib/errors.ts";
import { blockMs, LOGIN_THROTTLE, type LoginThrottlePolicy } from "../lib/login_throttle.ts";
import { hashPassword } from "../lib/password.ts";
import type { TestDatabase } from "./_db.ts";
import { type App, type TestApp, withTestApp } from "./_fixture.ts";

const PASSWORD = "correct horse battery staple";
const EMAIL = "admin@throttle.test";

async function addAdmin(db: TestDatabase, email = EMAIL) {
  await db.sql`INSERT INTO users (email, hashed_password, role)
    VALUES (${email}, ${await hashPassword(PASSWORD)}, 'ADMIN')`;
}

async function login(app: App, email: string, password: string) {
  const res = await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const body = await res.json();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body };
}

/** Counts the password derivations the app runs (every one goes through its admission gate). */
function countDerivations(deps: TestApp["deps"]) {
  const counter = { n: 0 };
  const run = deps.passwords.run.bind(deps.passwords);
  deps.passwords.run = <T>(job: () => Promise<T>): Promise<T> => {
    counter.n++;
    return run(job);
  };
  return counter;
}

Deno.test("the policy: five free failures, then 1 s doubling to a cap of 30 s", () => {
  const seconds = Array.from({ length: 14 }, (_, i) => blockMs(i + 1) / 1000);
  assertEquals(seconds, [0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30, 30]);
  assertEquals(LOGIN_THROTTLE.quietSeconds, 15 * 60);
});

Deno.test("after five failures an account's attempts are 429 with Retry-After, refused before any password check", () =>
  withTestApp(async ({ db, app, deps }) => {
    await addAdmin(db);
    const derivations = countDerivations(deps);
    for (let i = 1; i <= 5; i++) {
      assertEquals((await login(app, EMAIL, `wrong-${i}`)).status, 401, `failure ${i}`);
    }
    assertEquals(derivations.n, 5);
    const refused = await login(app, EMAIL, "wrong-6");
    assertEquals(refused.status, 429);
    assertEquals([refused.body.title, refused.body.status], ["Too many requests", 429]);
    assertMatch(refused.body.detail, /^Too many failed sign-ins for this account; retry in \d+ s$/);
    const wait = Number(refused.retryAfter);
    assert(Number.isInteger(wait) && wait >= 1 && wait <= 30, `Retry-After ${refused.retryAfter}`);
    // The right password too: a throttled account is not checked at all, so a flood costs no CPU.
    assertEquals((await login(app, EMAIL, PASSWORD)).status, 429);
    for (let i = 0; i < 20; i++) assertEquals((await login(app, EMAIL, `flood-${i}`)).status, 429);
    assertEquals(derivations.n, 5, "no derivation while throttled");
    // Another account is not affected.
    await addAdmin(db, "other@throttle.test");
    assertEquals((await login(app, "other@throttle.test", PASSWORD)).status, 200);
  }));

Deno.test("an unknown email is throttled exactly like a known one (no telling them apart by 429)", () =>
  withTestApp(async ({ db, app }) => {
    await addAdmin(db);
    const run = async (email: string) => {
      const seen = [];
      for (let i = 0; i < 7; i++) {
        const { status, retryAfter, body } = await login(app, email, `wrong-${i}`);
        seen.push({ status, retryAfter, detail: body.detail });
      }
      return seen;
    };
    const known = await run(EMAIL);
    const unknown = await run("nobody@throttle.test");
    assertEquals(known.map((s) => s.status), [401, 401, 401, 401, 401, 429, 429]);
    assertEquals(unknown, known);
    assertEquals(known[0].detail, LOGIN_FAILED);
    // Matched as a login matches users: case does not buy a fresh allowance.
    assertEquals((await login(app, "NOBODY@Throttle.TEST", "wrong")).status, 429);
  }));

Deno.test("a success clears the count; without failures before it, it leaves no record", () =>
  withTestApp(async ({ db, app }) => {
    await addAdmin(db);
    const rows = async () => (await db.sql`SELECT count(*)::int AS n FROM login_failures`)[0].n;
    assertEquals((await login(app, EMAIL, PASSWORD)).status, 200);
    assertEquals(await rows(), 0);
    for (let i = 0; i < 4; i++) assertEquals((await login(app, EMAIL, "typo")).status, 401);
    assertEquals(await rows(), 1, "failures are kept (hashed) per account");
    const [row] = await db.sql`SELECT account FROM login_failures`;
    assert(
      !new TextDecoder().decode(row.account).includes("throttle.test"),
      "the email is not kept as typed",
    );
    assertEquals((await login(app, EMAIL, PASSWORD)).status, 200);
    assertEquals(await rows(), 0, "a success forgets the failures");
    // A fresh allowance: four more typos are still 401s.
    for (let i = 0; i < 4; i++) assertEquals((await login(app, EMAIL, "typo")).status, 401);
  }));

// Short intervals, so the tests below see refusals end without long waits.
const QUICK: LoginThrottlePolicy = { freeFailures: 2, quietSeconds: 900, firstBlockMs: 100, maxBlockMs: 400 };

Deno.test("the refusal grows with each further failure up to the cap, and ends by itself", () =>
  withTestApp(async ({ db }) => {
    await addAdmin(db);
    const attempt = (password: string) => authenticate(db.sql, { email: EMAIL, password }, undefined, QUICK);
    const blocked = async () =>
      (await db.sql<{ ms: number }[]>`
        SELECT round(extract(epoch FROM blocked_until - last_failed_at) * 1000)::int AS ms FROM login_failures`)[
        0
      ]
        ?.ms;
    const until = async () => {
      for (;;) {
        try {
          return await attempt("wrong");
        } catch (err) {
          if (err instanceof Throttled) await new Promise((r) => setTimeout(r, 50));
          else throw err;
        }
      }
    };
    await assertRejects(() => attempt("wrong"), Unauthenticated);
    assertEquals(await blocked(), null, "the first failure is free");
    await assertRejects(() => attempt("wrong"), Unauthenticated);
    assertEquals(await blocked(), 100);
    await assertRejects(() => attempt(PASSWORD), Throttled); // the right password is refused while throttled
    const seen = [];
    for (let i = 0; i < 3; i++) {
      await assertRejects(until, Unauthenticated);
      seen.push(await blocked());
    }
    assertEquals(seen, [200, 400, 400]);
    // Once the interval is over, the right password is accepted and the record goes.
    for (;;) {
      try {
        await attempt(PASSWORD);
        break;
      } catch (err) {
        if (!(err instanceof Throttled)) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assertEquals((await db.sql`SELECT count(*)::int AS n FROM login_failures`)[0].n, 0);
  }));

Deno.test("past the free failures, of concurrent attempts on an account only one gets a password check", () =>
  withTestApp(async ({ db, app, deps }) => {
    await addAdmin(db);
    for (let i = 0; i < 5; i++) await login(app, EMAIL, "wrong");
    // The interval is over (as if the time had passed): the next attempt is free to be judged.
    await db.sql`UPDATE login_failures SET blocked_until = now() - interval '1 second'`;
    const derivations = countDerivations(deps);
    const statuses = await Promise.all(Array.from({ length: 20 }, () => login(app, EMAIL, "wrong")));
    assertEquals(derivations.n, 1);
    assertEquals(statuses.filter((s) => s.status === 401).length, 1);
    assertEquals(statuses.filter((s) => s.status === 429).length, 19);
  }));

import { assert, assertEquals } from "./_assert.ts";
import { LOGIN_FAILED } from "../lib/auth.ts";
import { DUMMY_HASH, hashPassword, needsRehash, PARAMS, verifyPassword } from "../lib/password.ts";
import { verifyToken } from "../lib/tokens.ts";
import { loginResponse } from "../routes/schemas.ts";
import type { TestDatabase } from "./_db.ts";
import { TEST_TOKEN_KEY, withTestApp } from "./_fixture.ts";

const PASSWORD = "correct horse battery staple";

/** Tokens live 15 minutes here (the test of `expires_in` reads it back). */
const TTL_900 = { env: { JWT_TTL_SECONDS: "900" } };

async function addUser(
  db: TestDatabase,
  email: string,
  role: "ADMIN" | "INSTRUCTOR" | "STUDENT",
  options: { active?: boolean; hash?: string } = {},
): Promise<number> {
  const hash = options.hash ?? await hashPassword(PASSWORD);
  const [row] = await db.sql<{ id: number }[]>`
    INSERT INTO users (email, hashed_password, role, is_active)
    VALUES (${email}, ${hash}, ${role}, ${options.active ?? true}) RETURNING id`;
  return row.id;
}

function login(
  app: { request: (path: string, init: RequestInit) => Response | Promise<Response> },
  body: unknown,
) {
  return app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("login returns a bearer token for the user's id and role, valid for JWT_TTL_SECONDS", () =>
  withTestApp(TTL_900, async ({ db, app }) => {
    const id = await addUser(db, "Admin@Example.test", "ADMIN");
    const res = await login(app, { email: "admin@example.test", password: PASSWORD });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("cache-control"), "no-store");
    const body = loginResponse.parse(await res.json());
    assertEquals([body.token_type, body.expires_in], ["bearer", 900]);
    assertEquals(await verifyToken(TEST_TOKEN_KEY, body.access_token), {
      userId: id,
      role: "ADMIN",
      epoch: 0,
    });
    const [, payload] = body.access_token.split(".");
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
    assertEquals([claims.sub, claims.role, claims.iss, claims.exp - claims.iat], [
      String(id),
      "ADMIN",
      "levelguard",
      900,
    ]);
  }));

Deno.test("login matches the email regardless of case and surrounding spaces", () =>
  withTestApp(TTL_900, async ({ db, app }) => {
    await addUser(db, "instructor@example.test", "INSTRUCTOR");
    const res = await login(app, { email: "  INSTRUCTOR@Example.TEST ", password: PASSWORD });
    assertEquals(res.status, 200);
  }));

Deno.test("unknown email, wrong password and inactive user get the same 401 problem", () =>
  withTestApp(TTL_900, async ({ db, app }) => {
    await addUser(db, "known@example.test", "ADMIN");
    await addUser(db, "gone@example.test", "ADMIN", { active: false });
    const attempts = [
      { email: "nobody@example.test", password: PASSWORD },
      { email: "known@example.test", password: "wrong password" },
      { email: "gone@example.test", password: PASSWORD },
    ];
    const seen = [];
    for (const attempt of attempts) {
      const res = await login(app, attempt);
      const body = await res.json();
      seen.push({
        status: res.status,
        type: res.headers.get("content-type"),
        auth: res.headers.get("www-authenticate"),
        title: body.title,
        detail: body.detail,
        errors: body.errors,
      });
    }
    const expected = {
      status: 401,
      type: "application/problem+json",
      auth: 'Bearer realm="levelguard"',
      title: "Unauthorized",
      detail: LOGIN_FAILED,
      errors: [],
    };
    assertEquals(seen, [expected, expected, expected]);
  }));

Deno.test("an unknown email costs about as much time as a wrong password", () =>
  withTestApp(TTL_900, async ({ db, app }) => {
    await addUser(db, "timed@example.test", "ADMIN");
    const timed = async (body: unknown) => {
      const start = performance.now();
      assertEquals((await login(app, body)).status, 401);
      return performance.now() - start;
    };
    // Interleaved, so load from other tests hits both series alike.
    const wrongTimes: number[] = [];
    const unknownTimes: number[] = [];
    for (let i = 0; i < 7; i++) {
      // Both emails would be throttled after five failures; the throttle is not what this measures.
      await db.sql`DELETE FROM login_failures`;
      wrongTimes.push(await timed({ email: "timed@example.test", password: "nope" }));
      unknownTimes.push(await timed({ email: "absent@example.test", password: "nope" }));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[3];
    const [wrong, unknown] = [median(wrongTimes), median(unknownTimes)];
    // Without the dummy hash an unknown email answers in ~1 ms against ~50 ms.
    assert(unknown > wrong * 0.4 && unknown < wrong * 2.5, `unknown ${unknown} ms vs wrong ${wrong} ms`);
  }));

Deno.test("the dummy hash that unknown emails are checked against uses the current scrypt parameters", async () => {
  const params = (hash: string) => hash.split("$").slice(0, 4).join("$");
  assertEquals(params(DUMMY_HASH), params(await hashPassword("x")));
  assertEquals(params(DUMMY_HASH), `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}`);
  assertEquals(needsRehash(DUMMY_HASH), false);
  assertEquals(await verifyPassword("x", DUMMY_HASH), false);
});

Deno.test("new hashes meet OWASP's scrypt minimum (one of its equivalent settings) within 16 MiB per derivation", () => {
  // OWASP Password Storage Cheat Sheet: N=2^17, r=8, p=1, or one of these equivalents.
  const owasp = [[2 ** 17, 8, 1], [2 ** 16, 8, 2], [2 ** 15, 8, 3], [2 ** 14, 8, 5], [2 ** 13, 8, 10]];
  assert(owasp.some(([N, r, p]) => PARAMS.N >= N && PARAMS.r >= r && PARAMS.p >= p), JSON.stringify(PARAMS));
  assert(128 * PARAMS.N * PARAMS.r <= 16 * 1024 * 1024, JSON.stringify(PARAMS));
});

Deno.test("older parameters verify and ask for a rehash; malformed or oversized hashes are refused, never thrown", async () => {
  const old = await hashPassword(PASSWORD, { params: { N: 2 ** 14, r: 8, p: 1 } });
  assert(await verifyPassword(PASSWORD, old));
  assertEquals(needsRehash(old), true);
  assertEquals(needsRehash(await hashPassword(PASSWORD)), false);
  const salt = "ImQ+1OZqeHgz/vyEZCk/Xg==";
  const key = "14gQp8pBeoZEvn38dIU+OW8ZfQIwFabyUeEZxf/h+ZQ=";
  for (
    const bad of [
      "not-a-hash",
      `scrypt$16384$8$1$${salt}`,
      `bcrypt$16384$8$1$${salt}$${key}`,
      `scrypt$16385$8$1$${salt}$${key}`, // N not a power of two
      `scrypt$${2 ** 20}$8$1$${salt}$${key}`, // 1 GiB
      `scrypt$16384$8$17$${salt}$${key}`, // too many lanes
      `scrypt$16384$0$1$${salt}$${key}`,
      `scrypt$16384$8$1$$${key}`,
      `scrypt$16384$8$1$${salt}$`,
    ]
  ) {
    assertEquals(await verifyPassword(PASSWORD, bad), false, bad);
    assertEquals(needsRehash(bad), false, bad);
  }
});

Deno.test("a user whose stored hash is unusable cannot log in and gets the same 401", () =>
  withTestApp(TTL_900, async ({ db, app }) => {
    await addUser(db, "broken@example.test", "ADMIN", { hash: "not-a-hash" });
    const res = await login(app, { email: "broken@example.test", password: PASSWORD });
    assertEquals(res.status, 401);
    assertEquals((await res.json()).detail, LOGIN_FAILED);
  }));

Deno.test("login input is validated: each missing, mistyped or unknown field is named", () =>
  withTestApp(TTL_900, async ({ app }) => {
    const cases: [unknown, string[]][] = [
      [{}, ["email", "password"]],
      [{ email: "a@b.test" }, ["password"]],
      [{ email: 42, password: PASSWORD }, ["email"]],
      [{ email: "a\u0000@b.test", password: PASSWORD }, ["email"]],
      [{ email: "no at sign", password: PASSWORD }, ["email"]],
      [{ email: "a@b.test", password: "" }, ["password"]],
      [{ email: "a@b.test", password: "x".repeat(1025) }, ["password"]],
      [{ email: "a@b.test", password: PASSWORD, role: "ADMIN" }, ["role"]],
      [[], ["body"]],
      [null, ["body"]],
    ];
    for (const [body, fields] of cases) {
      const res = await login(app, body);
      assertEquals(res.status, 400, JSON.stringify(body));
      const problem = await res.json();
      assertEquals(
        problem.errors.map((e: { field: string }) => e.field).sort(),
        fields,
        JSON.stringify(body),
      );
    }
  }));

Deno.test("a student may log in; the token carries the STUDENT role", () =>
  withTestApp(TTL_900, async ({ db, app }) => {
    const id = await addUser(db, "student@example.test", "STUDENT");
    const res = await login(app, { email: "student@example.test", password: PASSWORD });
    assertEquals(res.status, 200);
    const { access_token } = await res.json();
    assertEquals(await verifyToken(TEST_TOKEN_KEY, access_token), { userId: id, role: "STUDENT", epoch: 0 });
  }));

Deno.test("verified tokens are kept for their life only, and never a bad one", async () => {
  const { VerifiedTokens, issueToken } = await import("../lib/tokens.ts");
  const tokens = new VerifiedTokens(TEST_TOKEN_KEY, 2);
  const { token } = await issueToken(TEST_TOKEN_KEY, { userId: 7, role: "ADMIN", epoch: 0 }, 600);
  assertEquals(await tokens.verify(token), { userId: 7, role: "ADMIN", epoch: 0 });
  assertEquals(await tokens.verify(token), { userId: 7, role: "ADMIN", epoch: 0 });
  assertEquals(tokens.size, 1);
  assertEquals(await tokens.verify(token.slice(0, -2) + "xx"), null);
  assertEquals(tokens.size, 1, "a tampered token is not kept");
  for (const id of [8, 9, 10]) {
    await tokens.verify(
      (await issueToken(TEST_TOKEN_KEY, { userId: id, role: "STUDENT", epoch: 0 }, 600)).token,
    );
  }
  assertEquals(tokens.size, 2, "bounded");
  // An expired token is refused even if it was once valid (expiry plus the 5 s tolerance).
  const short = await issueToken(TEST_TOKEN_KEY, { userId: 11, role: "ADMIN", epoch: 0 }, 30);
  let later = 0;
  const past = new VerifiedTokens(TEST_TOKEN_KEY, 100, () => Date.now() + later);
  assertEquals(await past.verify(short.token), { userId: 11, role: "ADMIN", epoch: 0 });
  later = 34_000;
  assertEquals(
    await past.verify(short.token),
    { userId: 11, role: "ADMIN", epoch: 0 },
    "within the tolerance",
  );
  later = 36_000;
  assertEquals(await past.verify(short.token), null);
});

Deno.test("a token issued beyond the clock tolerance in the future is refused, one within it is not", async () => {
  const { SignJWT } = await import("jose");
  const { ISSUER } = await import("../lib/tokens.ts");
  const now = new Date("2030-01-01T00:00:00Z");
  const at = (iatOffsetS: number) =>
    new SignJWT({ role: "ADMIN", ep: 0 }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject("7")
      .setIssuer(ISSUER).setIssuedAt(now.getTime() / 1000 + iatOffsetS)
      .setExpirationTime(now.getTime() / 1000 + 600).sign(TEST_TOKEN_KEY);
  assertEquals(await verifyToken(TEST_TOKEN_KEY, await at(0), now), { userId: 7, role: "ADMIN", epoch: 0 });
  assertEquals(await verifyToken(TEST_TOKEN_KEY, await at(5), now), { userId: 7, role: "ADMIN", epoch: 0 });
  assertEquals(await verifyToken(TEST_TOKEN_KEY, await at(6), now), null, "beyond the 5 s tolerance");
  assertEquals(await verifyToken(TEST_TOKEN_KEY, await at(3600), now), null);
});

Deno.test("a token carries its account's epoch; one without it (issued before epochs) or with a bad one is refused", async () => {
  const { SignJWT } = await import("jose");
  const { ISSUER, issueToken } = await import("../lib/tokens.ts");
  const { token } = await issueToken(TEST_TOKEN_KEY, { userId: 7, role: "ADMIN", epoch: 3 }, 600);
  assertEquals(await verifyToken(TEST_TOKEN_KEY, token), { userId: 7, role: "ADMIN", epoch: 3 });
  for (
    const claims of [{ role: "ADMIN" }, { role: "ADMIN", ep: "3" }, { role: "ADMIN", ep: -1 }, {
      role: "ADMIN",
      ep: 1.5,
    }]
  ) {
    const old = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject("7")
      .setIssuer(ISSUER).setIssuedAt().setExpirationTime("10m").sign(TEST_TOKEN_KEY);
    assertEquals(await verifyToken(TEST_TOKEN_KEY, old), null, JSON.stringify(claims));
  }
});

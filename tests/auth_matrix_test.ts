/**
 * Who may call what: every credential a caller can present, against every
 * route of the contract (and against routes made for the test), plus the
 * check that the contract and the mounted routes are the same set.
 */
import { assert, assertEquals } from "./_assert.ts";
import { Hono } from "hono";
import { SignJWT } from "jose";
import { Accounts, type AccountState } from "../lib/accounts.ts";
import type { Sql } from "../lib/db.ts";
import type { Role } from "../lib/model.ts";
import { ISSUER } from "../lib/tokens.ts";
import { API_CONTRACT } from "../routes/contract.ts";
import type { AuthEnv } from "../routes/env.ts";
import { roleGuard } from "../routes/middleware/require_role.ts";
import { jsonBody } from "../routes/middleware/validate.ts";
import { mountedApiRoutes, protectedRoutes, type RouteDoc, routeKey } from "../routes/openapi_document.ts";
import { onError } from "../routes/problem.ts";
import { progressUpdateBody } from "../routes/schemas.ts";
import { memorySource } from "./_accounts.ts";
import { type App, bearer, capturingStderr, TEST_TOKEN_KEY, withTestApp } from "./_fixture.ts";

// ---- the accounts tokens speak for -------------------------------------------

/** The accounts of the matrix, in the database (full app) or in memory (bare app). */
const ACCOUNTS: { id: number; role: Role; active: boolean; epoch: number }[] = [
  { id: 11, role: "STUDENT", active: true, epoch: 0 },
  { id: 12, role: "INSTRUCTOR", active: true, epoch: 0 },
  { id: 13, role: "ADMIN", active: true, epoch: 0 },
  // Its password was changed once since the token below was issued.
  { id: 14, role: "ADMIN", active: true, epoch: 1 },
  { id: 15, role: "ADMIN", active: false, epoch: 1 },
  // Demoted: was an admin when its token was issued.
  { id: 16, role: "INSTRUCTOR", active: true, epoch: 1 },
];

/** Creates the matrix's accounts; the trigger of migration 0012 moves the epochs as a real change would. */
async function createAccounts(sql: Sql) {
  for (const a of ACCOUNTS) {
    // 16 was an admin.
    await sql`INSERT INTO users (id, email, hashed_password, role)
      VALUES (${a.id}, ${`user${a.id}@example.test`}, 'x', ${a.id === 16 ? "ADMIN" : a.role})`;
  }
  await sql`UPDATE users SET hashed_password = 'changed' WHERE id = 14`;
  await sql`UPDATE users SET is_active = false WHERE id = 15`;
  await sql`UPDATE users SET role = 'INSTRUCTOR' WHERE id = 16`;
  const rows = await sql<{ id: number; auth_epoch: number }[]>`
    SELECT id, auth_epoch FROM users WHERE id BETWEEN 11 AND 16 ORDER BY id`;
  assertEquals(
    rows.map((r) => r.auth_epoch),
    ACCOUNTS.map((a) => a.epoch),
    "each change moved the epoch once",
  );
}

/** The matrix's accounts in memory, for a bare app. */
function accountsInMemory(): Accounts {
  const states = new Map<number, AccountState>(
    ACCOUNTS.map((a) => [a.id, { role: a.role, active: a.active, epoch: a.epoch }]),
  );
  return new Accounts(memorySource(states));
}

// ---- tokens of every kind ------------------------------------------------

const b64url = (value: unknown) =>
  btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** A token of the real admin 13 at its epoch, but for what `claims` change (`ep: null`: no epoch claim). */
function sign(
  claims: {
    sub?: string;
    role?: string;
    iss?: string;
    iat?: number;
    exp?: number | null;
    ep?: number | null;
  },
  key = TEST_TOKEN_KEY,
) {
  const now = Math.floor(Date.now() / 1000);
  const payload = claims.ep === null
    ? { role: claims.role ?? "ADMIN" }
    : { role: claims.role ?? "ADMIN", ep: claims.ep ?? 0 };
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub ?? "13").setIssuer(claims.iss ?? ISSUER).setIssuedAt(claims.iat ?? now);
  if (claims.exp !== null) jwt.setExpirationTime(claims.exp ?? now + 600);
  return jwt.sign(key);
}

type Outcome = "401" | "role";

/** Every way a caller can present itself, and whether it must be refused before any role check. */
async function credentials(): Promise<
  { name: string; headers: Record<string, string>; outcome: Outcome; role?: Role; detail?: string }[]
> {
  const now = Math.floor(Date.now() / 1000);
  const admin = await sign({ role: "ADMIN" });
  const signature = admin.split(".")[2];
  const flipped = signature.slice(0, -2) + (signature.at(-2) === "A" ? "B" : "A") + signature.at(-1);
  const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
  return [
    { name: "no token", headers: {}, outcome: "401" },
    { name: "a garbage token", headers: auth("garbage"), outcome: "401" },
    { name: "a non-bearer scheme", headers: { Authorization: "Basic YWRtaW46YWRtaW4=" }, outcome: "401" },
    { name: "a tampered signature", headers: auth(admin.replace(/[^.]+$/, flipped)), outcome: "401" },
    {
      name: "a student token with an admin payload",
      headers: auth(
        (await sign({ role: "STUDENT" })).replace(
          /\.[^.]+\./,
          `.${b64url({ sub: "1", role: "ADMIN", iss: ISSUER, iat: now, exp: now + 600 })}.`,
        ),
      ),
      outcome: "401",
    },
    {
      name: "alg: none",
      headers: auth(
        `${b64url({ alg: "none", typ: "JWT" })}.${
          b64url({ sub: "1", role: "ADMIN", iss: ISSUER, iat: now, exp: now + 600 })
        }.`,
      ),
      outcome: "401",
    },
    {
      name: "an expired token",
      headers: auth(await sign({ iat: now - 3600, exp: now - 60 })),
      outcome: "401",
    },
    { name: "a wrong issuer", headers: auth(await sign({ iss: "not-levelguard" })), outcome: "401" },
    { name: "a token that never expires", headers: auth(await sign({ exp: null })), outcome: "401" },
    { name: "a token for user id 0", headers: auth(await sign({ sub: "0" })), outcome: "401" },
    {
      name: "another key",
      headers: auth(await sign({}, new TextEncoder().encode("another-secret-another-secret-0123456789"))),
      outcome: "401",
    },
    { name: "an unknown role", headers: auth(await sign({ role: "ROOT" })), outcome: "401" },
    // Issued before tokens carried the account's epoch: refused, the holder signs in again.
    { name: "a token without an epoch", headers: auth(await sign({ ep: null })), outcome: "401" },
    {
      name: "a token issued a minute in the future",
      headers: auth(await sign({ iat: now + 60, exp: now + 660 })),
      outcome: "401",
    },
    ...[
      { name: "a real student presenting the ADMIN role", headers: await bearer(11, "ADMIN") },
      { name: "a user who does not exist", headers: await bearer(999_999, "ADMIN") },
      { name: "an admin whose password changed since", headers: await bearer(14, "ADMIN") },
      { name: "a deactivated admin", headers: await bearer(15, "ADMIN", 600, 1) },
      { name: "a demoted admin", headers: await bearer(16, "ADMIN") },
      { name: "an epoch the account never had", headers: await bearer(13, "ADMIN", 600, 7) },
    ].map((c) => ({ ...c, outcome: "401" as const, detail: "Invalid or expired token" })),
    { name: "a student", headers: await bearer(11, "STUDENT"), outcome: "role", role: "STUDENT" },
    { name: "an instructor", headers: await bearer(12, "INSTRUCTOR"), outcome: "role", role: "INSTRUCTOR" },
    { name: "an admin", headers: await bearer(13, "ADMIN"), outcome: "role", role: "ADMIN" },
    {
      name: "a demoted admin signed in again",
      headers: await bearer(16, "INSTRUCTOR", 600, 1),
      outcome: "role",
      role: "INSTRUCTOR",
    },
  ];
}

function requestFor(
  doc: Pick<RouteDoc, "method" | "path" | "body" | "example">,
  headers: Record<string, string>,
) {
  const path = doc.path.replace(/:[A-Za-z0-9_]+/g, "1");
  const init: RequestInit = { method: doc.method, headers: { ...headers } };
  if (doc.body && doc.example !== undefined) {
    init.body = JSON.stringify(doc.example);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  return [path, init] as const;
}

/** Runs every credential against every route; fails loudly when a protected route lets a stranger in. */
async function authMatrix(
  t: Deno.TestContext,
  app: { request: App["request"] },
  routes: readonly Pick<RouteDoc, "method" | "path" | "roles" | "body" | "example">[],
) {
  const creds = await credentials();
  for (const doc of routes) {
    for (const cred of creds) {
      await t.step(`${doc.method} ${doc.path} with ${cred.name}`, async () => {
        const res = await app.request(...requestFor(doc, cred.headers));
        const body = await res.text();
        if (cred.outcome === "401" && res.status < 400) {
          throw new Error(
            `SECURITY: protected route ${doc.method} ${doc.path} answered ${res.status} to ${cred.name}`,
          );
        }
        const allowed = cred.role !== undefined && doc.roles.includes(cred.role);
        const expected = cred.outcome === "401" ? 401 : allowed ? "allowed" : 403;
        if (expected === "allowed") {
          assert(![401, 403].includes(res.status) && res.status < 500, `${res.status} ${body}`);
        } else {
          assertEquals(res.status, expected, body);
          assertEquals(res.headers.get("content-type"), "application/problem+json");
          if (cred.detail) assertEquals(JSON.parse(body).detail, cred.detail);
          if (expected === 401) {
            assertEquals(res.headers.get("www-authenticate"), 'Bearer realm="levelguard"');
          }
        }
      });
    }
  }
}

Deno.test("every protected endpoint answers 401, 403 or lets the caller in, by token and role", (t) =>
  withTestApp(async ({ db, app }) => {
    // The tokens below speak for these accounts, as they are in the database.
    await createAccounts(db.sql);
    const routes = protectedRoutes(API_CONTRACT);
    assert(routes.length >= 6, `the contract lists the protected routes (${routes.length})`);
    await authMatrix(t, app, routes);
  }));

Deno.test("the role guard gives 401 before 403 and checks roles, on a bare app made for the test", async (t) => {
  const allow = roleGuard(TEST_TOKEN_KEY, accountsInMemory());
  const app = new Hono<AuthEnv>();
  app.onError(onError);
  app.get("/api/v1/_test/admin", allow("ADMIN"), (c) => c.json({ ok: true }));
  app.post(
    "/api/v1/_test/staff",
    allow("ADMIN", "INSTRUCTOR"),
    jsonBody(progressUpdateBody, { timeoutMs: 10_000 }),
    (c) => c.json({ ok: true }),
  );
  await authMatrix(t, app, [
    { method: "GET", path: "/api/v1/_test/admin", roles: ["ADMIN"] },
    {
      method: "POST",
      path: "/api/v1/_test/staff",
      roles: ["ADMIN", "INSTRUCTOR"],
      body: progressUpdateBody,
      example: { student_id: 1, specialization_id: "PLAYER", xp_change: 5 },
    },
  ]);
});

Deno.test("a request without a token is 401 before its body or query is even looked at", () =>
  withTestApp(async ({ app }) => {
    for (const doc of protectedRoutes(API_CONTRACT)) {
      const path = `${doc.path.replace(/:[A-Za-z0-9_]+/g, "1")}?limit=nope&window=forever`;
      const withBody = doc.method === "GET"
        ? {}
        : { body: '{"nope": ', headers: { "Content-Type": "text/plain" } };
      const res = await app.request(path, { method: doc.method, ...withBody });
      await res.body?.cancel();
      assertEquals(res.status, 401, `${doc.method} ${doc.path} checks input before the token`);
    }
  }));

Deno.test("a valid token of a user who no longer exists never causes a 500", () =>
  withTestApp(async ({ db, app }) => {
    // Tokens are stateless: one can outlive its user. Actions must not trip over the missing actor.
    await db
      .sql`INSERT INTO users (id, email, hashed_password, role) VALUES (1, 's@example.test', 'x', 'STUDENT')`;
    await capturingStderr(async () => {
      for (const doc of protectedRoutes(API_CONTRACT)) {
        const res = await app.request(...requestFor(doc, await bearer(999_999, doc.roles[0] as Role)));
        const text = await res.text();
        assert(res.status < 500, `${doc.method} ${doc.path} answered ${res.status}: ${text}`);
      }
    });
  }));

Deno.test("the mounted /api routes are exactly the contract's, so none escapes the auth matrix", () =>
  withTestApp(({ app }) => {
    const mounted = mountedApiRoutes(app.routes).map(routeKey).sort();
    const contract = API_CONTRACT.map(routeKey).sort();
    const undocumented = mounted.filter((k) => !contract.includes(k));
    assertEquals(undocumented, [], `SECURITY: mounted but not in the contract: ${undocumented.join(", ")}`);
    assertEquals(contract.filter((k) => !mounted.includes(k)), [], "in the contract but not mounted");
    assert(mounted.length >= 8, `all routes were enumerated (${mounted.length})`);
    return Promise.resolve();
  }));

Deno.test("an app.all /api route is enumerated too, so the contract check cannot miss it", () => {
  const app = new Hono();
  const ok = () => new Response("ok");
  app.use("/api/*", async (_c, next) => await next());
  app.all("/api/v1/_test/any", ok);
  app.get("/api/v1/_test/one", ok);
  app.get("/admin/_test", ok);
  assertEquals(mountedApiRoutes(app.routes).map(routeKey).sort(), [
    "ALL /api/v1/_test/any",
    "GET /api/v1/_test/one",
  ]);
});

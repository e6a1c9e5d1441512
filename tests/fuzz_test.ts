import { assert } from "./_assert.ts";
import fc from "fast-check";
import { z } from "zod";
import { setQuiet } from "../lib/log.ts";
import { API_CONTRACT } from "../routes/contract.ts";
import type { RouteDoc } from "../routes/openapi_document.ts";
import { type App, bearer, withTestApp } from "./_fixture.ts";

const RUNS = 1000;

/** Values that stress validators: edge numbers, wrong types, SQL and markup, huge and odd strings. */
const nasty = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 9999999999, 1.5, 1e308, -0),
  fc.double(),
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.constantFrom("", "10", "1; DROP TABLE users; --", "<script>alert(1)</script>", "\u0000", "\ud800"),
  fc.constantFrom("PLAYER", "COACH", "INTERNSHIP", "ADMIN", "a@b.test", "admin@levelguard.local"),
  fc.emailAddress(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

/** Query values: numbers in every spelling, enum-ish words, SQL and markup, odd strings. */
const queryValue = fc.oneof(
  fc.string(),
  fc.integer().map(String),
  fc.double().map(String),
  fc.constantFrom(
    "",
    "0",
    "-1",
    "500",
    "501",
    "1e3",
    "0x10",
    "NaN",
    "Infinity",
    "1h",
    "24h",
    "7d",
    "forever",
  ),
  fc.constantFrom("LEVEL_MISMATCH", "PLAYER", "player", "1; DROP TABLE users; --", "<script>", "\u0000"),
  fc.base64String({ maxLength: 40 }),
);

/** Bodies shaped like the schema (its keys, random values, sometimes an extra key) and bodies of anything. */
function bodies(doc: RouteDoc): fc.Arbitrary<{ text: string; type?: string }> {
  const keys = doc.body instanceof z.ZodObject ? Object.keys(doc.body.shape) : [];
  const shaped = fc.record(Object.fromEntries(keys.map((k) => [k, nasty])), { requiredKeys: [] });
  // Near-valid: every key present, mostly plausible values, so requests get past validation.
  const example = (doc.example ?? {}) as Record<string, unknown>;
  const plausible = (k: string) =>
    fc.oneof(
      { weight: 3, arbitrary: fc.constant(example[k]) },
      { weight: 2, arbitrary: fc.integer({ min: 1, max: 5 }) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 ** 40 }) },
      { weight: 1, arbitrary: fc.constantFrom("PLAYER", "COACH", "INTERNSHIP", true, false) },
      { weight: 1, arbitrary: fc.emailAddress() },
      { weight: 1, arbitrary: nasty },
    );
  const nearValid = fc.record(Object.fromEntries(keys.map((k) => [k, plausible(k)])));
  const withExtra = fc.tuple(shaped, fc.dictionary(fc.string({ maxLength: 8 }), nasty, { maxKeys: 2 }))
    .map(([a, b]) => ({ ...b, ...a }));
  const json = fc.oneof(
    { weight: 4, arbitrary: nearValid },
    { weight: 3, arbitrary: shaped },
    { weight: 2, arbitrary: withExtra },
    { weight: 2, arbitrary: fc.anything() },
    { weight: 1, arbitrary: fc.jsonValue() },
  ).map((v) => ({ text: JSON.stringify(v) ?? "null", type: "application/json" }));
  const raw = fc.record({
    text: fc.oneof(
      fc.string(),
      fc.constantFrom("{", "[1,", '{"a":}', "nul", "", " ", "\u0000", "{}".repeat(9000)),
    ),
    type: fc.option(
      fc.constantFrom("application/json", "text/plain", "application/json; charset=utf-8", "*/*"),
      {
        nil: undefined,
      },
    ),
  });
  return fc.oneof({ weight: 8, arbitrary: json }, { weight: 2, arbitrary: raw });
}

/** How often each status came back, per route (printed, so a run shows what it exercised). */
const tally = new Map<string, Map<number, number>>();

function report(doc: RouteDoc) {
  const counts = [...(tally.get(`${doc.method} ${doc.path}`) ?? new Map()).entries()].sort((a, b) =>
    a[0] - b[0]
  );
  console.log(`${doc.method} ${doc.path}: ${counts.map(([s, n]) => `${s}x${n}`).join(" ")}`);
}

async function assertNo5xx(app: App, doc: RouteDoc, path: string, init: RequestInit, what: string) {
  const res = await app.request(path, init);
  const counts = tally.get(`${doc.method} ${doc.path}`) ?? new Map<number, number>();
  tally.set(`${doc.method} ${doc.path}`, counts.set(res.status, (counts.get(res.status) ?? 0) + 1));
  const text = await res.text();
  assert(res.status < 500, `${doc.method} ${doc.path} answered ${res.status} to ${what}: ${text}`);
  if (res.status >= 400) {
    assert(res.headers.get("content-type") === "application/problem+json", `${res.status} is a problem`);
    JSON.parse(text);
  }
}

Deno.test(`${RUNS} random bodies to each JSON endpoint never produce a 5xx`, (t) =>
  withTestApp(async ({ app, db }) => {
    setQuiet(true);
    // Students 1..3 exist, so well-formed bodies really apply XP; the caller is a real admin.
    await db.sql`
      INSERT INTO users (id, email, hashed_password, role)
      VALUES (1, 's1@example.test', 'x', 'STUDENT'), (2, 's2@example.test', 'x', 'STUDENT'),
             (3, 's3@example.test', 'x', 'STUDENT'), (100, 'a@example.test', 'x', 'ADMIN')`;
    const admin = await bearer(100, "ADMIN");
    const routes = API_CONTRACT.filter((d) => d.body);
    assert(routes.length >= 1, "login at least");
    for (const doc of routes) {
      await t.step(`${doc.method} ${doc.path}`, async () => {
        await fc.assert(
          fc.asyncProperty(bodies(doc), async ({ text, type }) => {
            const headers: Record<string, string> = doc.roles.length ? { ...admin } : {};
            if (type) headers["Content-Type"] = type;
            await assertNo5xx(
              app,
              doc,
              doc.path,
              { method: doc.method, headers, body: text },
              text.slice(0, 200),
            );
          }),
          { numRuns: RUNS },
        );
        report(doc);
      });
    }
  }));

Deno.test(`${RUNS} random query strings to each endpoint with a query never produce a 5xx`, (t) =>
  withTestApp(async ({ app }) => {
    setQuiet(true);
    const admin = await bearer(1, "ADMIN");
    for (const doc of API_CONTRACT.filter((d) => d.query)) {
      const keys = doc.query instanceof z.ZodObject ? Object.keys(doc.query.shape) : [];
      const params = fc.array(
        fc.tuple(fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 6 })), queryValue),
        { maxLength: 5 },
      );
      await t.step(`${doc.method} ${doc.path}`, async () => {
        await fc.assert(
          fc.asyncProperty(params, async (pairs) => {
            const qs = new URLSearchParams(pairs).toString();
            await assertNo5xx(app, doc, `${doc.path}?${qs}`, { method: doc.method, headers: admin }, qs);
          }),
          { numRuns: RUNS },
        );
        report(doc);
      });
    }
  }));

import { assert, assertEquals, assertMatch, assertThrows } from "./_assert.ts";
import { loadConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { estimateEntropyBits, randomSecret, secretProblem } from "../lib/secret_strength.ts";

Deno.test("configuration defaults match the SPEC", () => {
  const config = loadConfig({});
  assertEquals(config.PORT, 8000);
  assertEquals(config.DB_POOL_MAX, 10);
  assertEquals(config.JWT_TTL_SECONDS, 1800);
  assertEquals(config.RATE_LIMIT_PER_MINUTE, 100);
  assertEquals(config.RATE_LIMIT_EXEMPT, []);
  assertEquals(config.TRUST_PROXY, []);
  assertEquals(config.SCAN_CRON, "*/5 * * * *");
  assertEquals(config.DATA_DIR, "./data");
  assertEquals(config.DATABASE_URL, undefined);
});

Deno.test("configuration parses lists, flags and numbers", () => {
  const config = loadConfig({
    PORT: "9000",
    RATE_LIMIT_EXEMPT: "127.0.0.1/32, 10.0.0.0/8",
    TRUST_PROXY: "127.0.0.1/32, 10.0.0.0/8",
    DATABASE_URL: "postgres://u@db:5432/x",
  });
  assertEquals(config.PORT, 9000);
  assertEquals(config.RATE_LIMIT_EXEMPT.map((c) => [c.text, c.prefix]), [["127.0.0.1/32", 128], [
    "10.0.0.0/8",
    104,
  ]]);
  assertEquals(config.TRUST_PROXY.map((c) => c.text), ["127.0.0.1/32", "10.0.0.0/8"]);
  for (const none of ["0", "false", ""]) {
    assertEquals(loadConfig({ TRUST_PROXY: none }).TRUST_PROXY, [], none);
  }
  assertEquals(config.DATABASE_URL, "postgres://u@db:5432/x");
});

const bad: [string, string][] = [
  ["PORT", "eighty"],
  ["PORT", "70000"],
  ["DB_POOL_MAX", "0"],
  ["JWT_SECRET", "short"],
  ["RATE_LIMIT_PER_MINUTE", "-1"],
  ["RATE_LIMIT_EXEMPT", "not-an-ip"],
  ["RATE_LIMIT_EXEMPT", "10.0.0.0/8, 300.1.1.1"],
  ["RATE_LIMIT_EXEMPT", "10.0.0.0/33"],
  ["TRUST_PROXY", "maybe"],
  ["TRUST_PROXY", "1"],
  ["TRUST_PROXY", "true"],
  ["TRUST_PROXY", "10.0.0.1, 0.0.0.0/0"],
  ["TRUST_PROXY", "::/0"],
  ["DATABASE_URL", "mysql://x"],
  ["SCAN_CRON", "every five minutes"],
  ["RATE_LIMIT_STORE", "redis"],
  ["DB_PREPARE", "no"],
  ["DATABASE_REPLICA_URL", "mysql://x"],
  ["DATABASE_DIRECT_URL", "http://db"],
  ["REPLICA_MAX_LAG_S", "-1"],
];

for (const [name, value] of bad) {
  Deno.test(`a bad ${name} (${value}) stops startup with one line naming it`, () => {
    const err = assertThrows(() => loadConfig({ [name]: value }), ConfigError);
    assertMatch(err.message, new RegExp(`^invalid configuration: ${name} `));
    assertEquals(err.message.includes("\n"), false);
  });
}

Deno.test("a bad RATE_LIMIT_EXEMPT entry is named in the one line", () => {
  const err = assertThrows(() => loadConfig({ RATE_LIMIT_EXEMPT: "10.0.0.0/8,300.1.1.1/8" }), ConfigError);
  assertMatch(
    err.message,
    /^invalid configuration: RATE_LIMIT_EXEMPT "300\.1\.1\.1\/8" is not an IP address or CIDR/,
  );
});

Deno.test("TRUST_PROXY=1, which would believe any client, is refused with what to write instead", () => {
  for (const value of ["1", "true", "0.0.0.0/0"]) {
    const err = assertThrows(() => loadConfig({ TRUST_PROXY: value }), ConfigError);
    assertMatch(
      err.message,
      /^invalid configuration: TRUST_PROXY "[^"]+" would believe any client; list your proxies' addresses instead, e\.g\. TRUST_PROXY=127\.0\.0\.1\/32/,
    );
  }
});

Deno.test("secret values are never echoed in configuration errors", () => {
  const err = assertThrows(() => loadConfig({ JWT_SECRET: "tiny-secret" }), ConfigError);
  assertEquals(err.message.includes("tiny-secret"), false);
});

Deno.test("database URLs, which may carry a password, are never echoed either", () => {
  for (const name of ["DATABASE_URL", "DATABASE_REPLICA_URL", "DATABASE_DIRECT_URL"]) {
    const err = assertThrows(() => loadConfig({ [name]: "mysql://user:hunter2@db/x" }), ConfigError);
    assertEquals(err.message.includes("hunter2"), false, err.message);
  }
});

Deno.test("a replica or direct URL without what it belongs to stops startup instead of being ignored", () => {
  const url = "postgres://u@db:5432/x";
  for (const name of ["DATABASE_REPLICA_URL", "DATABASE_DIRECT_URL"]) {
    const err = assertThrows(() => loadConfig({ [name]: url, DB_PREPARE: "0" }), ConfigError);
    assertMatch(err.message, new RegExp(`^invalid configuration: ${name} needs DATABASE_URL `));
  }
  const direct = assertThrows(
    () => loadConfig({ DATABASE_URL: url, DATABASE_DIRECT_URL: url }),
    ConfigError,
  );
  assertMatch(direct.message, /^invalid configuration: DATABASE_DIRECT_URL is for DB_PREPARE=0 /);
  const pooled = loadConfig({
    DATABASE_URL: url,
    DATABASE_DIRECT_URL: url,
    DB_PREPARE: "0",
    DATABASE_REPLICA_URL: url,
  });
  assertEquals([pooled.DB_PREPARE, pooled.DATABASE_DIRECT_URL, pooled.DATABASE_REPLICA_URL], [
    false,
    url,
    url,
  ]);
});

const URL_VARIABLES = [
  "DATABASE_URL",
  "DATABASE_DIRECT_URL",
  "DATABASE_REPLICA_URL",
  "STAGING_FROM_URL",
  "STAGING_TO_URL",
] as const;

Deno.test("a malformed connection string is one line naming the variable and what is wrong, never the value", () => {
  const forms: [string, RegExp][] = [
    ["postgres://admin:TopSecret123@db:notaport/x", /has a port that is not a number from 1 to 65535$/],
    ["postgres://admin:TopSecret123@db:99999/x", /has a port that is not a number from 1 to 65535$/],
    ["postgres://admin:Top%zzSecret123@db:5432/x", /has a malformed %-escape in its user name or password/],
    ["postgres://admin:TopSecret123@[::1/x", /has a malformed host/],
  ];
  for (const name of URL_VARIABLES) {
    for (const [value, why] of forms) {
      // The replica and direct URLs need DATABASE_URL (and DB_PREPARE=0): the URL is checked first.
      const err = assertThrows(() => loadConfig({ [name]: value }), ConfigError);
      assertMatch(err.message, new RegExp(`^invalid configuration: ${name} `));
      assertMatch(err.message, why);
      assertEquals(err.message.includes("\n"), false);
      assertEquals(/TopSecret|zzTop|admin/.test(err.message), false, err.message);
    }
  }
});

Deno.test("staging:export's URLs come from the environment", () => {
  const config = loadConfig({
    STAGING_FROM_URL: "postgres://ro:pw@prod/x",
    STAGING_TO_URL: "postgres://lg:pw@stg/x",
  });
  assertEquals([config.STAGING_FROM_URL, config.STAGING_TO_URL], [
    "postgres://ro:pw@prod/x",
    "postgres://lg:pw@stg/x",
  ]);
});

/** Weak JWT_SECRET values, all 32 characters or longer. */
const WEAK_SECRETS = [
  "x".repeat(32),
  "x".repeat(64),
  "passwordpasswordpasswordpassword",
  "Password1!Password1!Password1!Password1!",
  "correcthorsecorrecthorsecorrecthorse",
  // The test suite's former secrets: a phrase repeated, then a few characters.
  "fault-test-secret-fault-test-secret-0000",
  "test-secret-test-secret-test-secret-0123",
  "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
  "0123456789".repeat(4),
  "abababababababababababababababab12",
  "01101001100101101001011001101001",
];

Deno.test("a JWT_SECRET without real entropy is refused in one line saying how to make one, never quoting it", () => {
  for (const secret of WEAK_SECRETS) {
    assert(secretProblem(secret) !== null, `accepted: ${secret}`);
    const err = assertThrows(() => loadConfig({ JWT_SECRET: secret }), ConfigError);
    assertMatch(err.message, /^invalid configuration: JWT_SECRET /);
    assertMatch(err.message, /make one with: openssl rand -base64 48/);
    assertEquals(err.message.includes("\n"), false);
    assertEquals(err.message.includes(secret.slice(0, 12)), false, err.message);
  }
  const short = assertThrows(() => loadConfig({ JWT_SECRET: "Zq8!vR2#" }), ConfigError);
  assertMatch(short.message, /at least 32 characters; make one with: openssl rand -base64 48/);
});

Deno.test("every secret as openssl rand -base64 48 makes one is accepted, and so are other random ones", () => {
  for (let i = 0; i < 2000; i++) {
    const secret = randomSecret();
    assertEquals(secretProblem(secret), null, secret);
  }
  // Fixed draws of the same tools: openssl rand -base64 48, -base64 32, -hex 32, and two UUIDs.
  for (
    const secret of [
      "iJL8pCANW421WnWTHozohr4IS3axHjXgUHRCGCHFArxR7c3gZpD6rb1cIFswwH6l",
      "Nwnb0OFmX6HPUIjEynulUjX/RhwqNdbJsAQ7htcT7pNvPzICmZhrAiUN4tTv2aPC",
      "q3d9Xr1V0lOe8b2mJzY6Kc4NwTfHgA7pUsRiLxQy5Eo=",
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      "loadtest-5b0e3d52-6c1f-4a8e-9d3b-2f7e1c9a4b60-0a9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c",
    ]
  ) assertEquals(loadConfig({ JWT_SECRET: secret }).JWT_SECRET, secret);
});

Deno.test("the entropy estimate counts repeats and runs as nothing and random characters as the pool allows", () => {
  assertEquals(estimateEntropyBits(""), 0);
  // One literal "x", then a repeat of it all the way.
  assertEquals(Math.round(estimateEntropyBits("x".repeat(40))), Math.round(Math.log2(26)));
  // "abc" + a run: a, b are literals, c onward continue the run.
  assertEquals(Math.round(estimateEntropyBits("abcdefgh")), Math.round(2 * Math.log2(26)));
  // "word" once, then repeated: 4 literals.
  assertEquals(Math.round(estimateEntropyBits("wordwordword")), Math.round(4 * Math.log2(26)));
});

import { assertEquals, assertMatch, assertThrows } from "./_assert.ts";
import { loadConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";

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

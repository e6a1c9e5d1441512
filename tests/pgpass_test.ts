/** The password file, read as libpq reads it (postgres.js does not). */
import { assertEquals } from "./_assert.ts";
import { matchPgpass, pgpassTarget } from "../lib/pgpass.ts";

const target = { host: "db.example.com", port: 5432, database: "levelguard", user: "ro" };

Deno.test("the first line whose fields match (or are *) gives the password; escapes and comments are read", () => {
  const file = [
    "# production, read-only",
    "other.example.com:5432:levelguard:ro:not-this-one",
    "db.example.com:5433:*:ro:wrong-port",
    "db.example.com:5432:*:ro:p\\:ss\\\\word",
    "*:*:*:*:fallback",
  ].join("\n");
  assertEquals(matchPgpass(file, target), "p:ss\\word");
  assertEquals(matchPgpass(file, { ...target, user: "lg" }), "fallback");
  assertEquals(matchPgpass("db.example.com:5432:levelguard:ro\n", target), null, "a line without a password");
  assertEquals(matchPgpass("", target), null);
});

Deno.test("a URL's first host, port, database and user are what a password file line is matched on", () => {
  assertEquals(pgpassTarget("postgres://ro@db.example.com/levelguard"), target);
  assertEquals(
    pgpassTarget("postgresql://ro@db.example.com:5432,replica:5433/levelguard?sslmode=require"),
    target,
  );
  assertEquals(pgpassTarget("postgres://r%6F@[::1]:6432/x").host, "::1");
});

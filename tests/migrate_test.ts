import { assertEquals, assertMatch, assertRejects } from "./_assert.ts";
import { MigrationTampered } from "../lib/errors.ts";
import { migrate, pendingMigrations, readMigrations } from "../lib/migrate.ts";
import { hasServer } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";

Deno.test("migrations apply once, in order, and are recorded with checksums", () =>
  withTestApp({ empty: true }, async ({ db }) => {
    const files = await readMigrations();
    assertEquals(await pendingMigrations(db.sql, files), files.map((f) => f.name));
    assertEquals(await migrate(db.sql, files), files.map((f) => f.name));
    assertEquals(await migrate(db.sql, files), []);
    const rows = await db.sql<{ name: string; checksum: string }[]>`
      SELECT name, checksum FROM schema_migrations ORDER BY name`;
    assertEquals(rows.map((r) => [r.name, r.checksum]), files.map((f) => [f.name, f.checksum]));
    assertEquals(await pendingMigrations(db.sql, files), []);
  }));

Deno.test({
  name: "two instances migrating together apply each migration exactly once",
  ignore: !hasServer,
}, () =>
  withTestApp({ empty: true }, async ({ db }) => {
    const other = db.connect(2);
    const files = await readMigrations();
    const [a, b] = await Promise.all([migrate(db.sql, files), migrate(other, files)]);
    assertEquals([...a, ...b].sort(), files.map((f) => f.name));
    const [{ count }] = await db.sql`SELECT count(*)::int AS count FROM schema_migrations`;
    assertEquals(count, files.length);
  }));

Deno.test("a changed, already-applied migration stops with one line", () =>
  withTestApp(async ({ db }) => {
    const files = await readMigrations();
    const tampered = files.map((f, i) => i === 0 ? { ...f, checksum: "0".repeat(64) } : f);
    const err = await assertRejects(() => migrate(db.sql, tampered), MigrationTampered);
    assertMatch(err.message, /^migration 0001_core_schema\.sql was changed after it was applied/);
    await assertRejects(() => pendingMigrations(db.sql, tampered), MigrationTampered);
  }));

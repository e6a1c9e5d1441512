import { assertEquals, assertMatch, assertRejects } from "./_assert.ts";
import { MigrationTampered } from "../lib/errors.ts";
import { EARLIER_VERSIONS, migrate, pendingMigrations, readMigrations } from "../lib/migrate.ts";
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

Deno.test({
  name: "a database that applied 0005 as it first landed is accepted and brought to today's apply_xp by 0011",
  ignore: !hasServer,
}, () =>
  withTestApp({ empty: true }, async ({ db }) => {
    const files = await readMigrations();
    const firstLanded = await Deno.readTextFile(
      new URL("./fixtures/0005_one_rule_each.first_landed.sql", import.meta.url),
    );
    const [old] = await readMigrationsFrom({ "0005_one_rule_each.sql": firstLanded });
    assertEquals(EARLIER_VERSIONS["0005_one_rule_each.sql"].checksums, [old.checksum]);
    // An install of that time: 0001-0005, 0005 in its first version.
    const then = [...files.filter((f) => f.name < "0005"), old];
    await migrate(db.sql, then);
    const signature = () =>
      db.sql<{ args: string }[]>`
        SELECT pg_get_function_identity_arguments(oid) AS args FROM pg_proc WHERE proname = 'apply_xp'`;
    assertEquals((await signature()).length, 1);
    assertEquals((await signature())[0].args.includes("p_deadline"), false);

    const applied = await migrate(db.sql, files);
    assertEquals(applied, files.filter((f) => f.name > "0005_one_rule_each.sql").map((f) => f.name));
    assertEquals(await pendingMigrations(db.sql, files), []);
    const [only] = await signature();
    assertEquals((await signature()).length, 1, "the six-argument apply_xp is gone");
    assertMatch(only.args, /p_deadline timestamp with time zone/);
    // The same function a fresh install has.
    const [{ def }] = await db.sql<{ def: string }[]>`
      SELECT pg_get_functiondef(oid) AS def FROM pg_proc WHERE proname = 'apply_xp'`;
    await withTestApp(async ({ db: fresh }) => {
      const [{ def: freshDef }] = await fresh.sql<{ def: string }[]>`
        SELECT pg_get_functiondef(oid) AS def FROM pg_proc WHERE proname = 'apply_xp'`;
      assertEquals(def, freshDef);
    });
  }));

Deno.test("0005 in any other changed version is still refused", () =>
  withTestApp(async ({ db }) => {
    const files = await readMigrations();
    const edited = files.map((f) =>
      f.name === "0005_one_rule_each.sql" ? { ...f, checksum: "1".repeat(64) } : f
    );
    const err = await assertRejects(() => migrate(db.sql, edited), MigrationTampered);
    assertMatch(err.message, /^migration 0005_one_rule_each\.sql was changed after it was applied/);
  }));

/** Migrations built from `contents` (name → SQL), checksummed as readMigrations does. */
async function readMigrationsFrom(contents: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "levelguard-migrations-" });
  try {
    for (const [name, sql] of Object.entries(contents)) await Deno.writeTextFile(`${dir}/${name}`, sql);
    return await readMigrations(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

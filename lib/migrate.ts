/** Forward-only SQL migrations: ordered, checksummed, one transaction each, under an advisory lock. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Queryable, Sql } from "./db.ts";
import { MigrationTampered } from "./errors.ts";
import { transaction } from "./connection.ts";

const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations/", import.meta.url));
// Arbitrary, fixed key: every instance of Levelguard serialises on it.
const MIGRATION_LOCK_KEY = 7_245_001;

/** One migration file. */
export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

/** Reads `migrations/*.sql` in name order. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /^\d{4}_[a-z0-9_]+\.sql$/.test(entry.name)) names.push(entry.name);
  }
  names.sort();
  return await Promise.all(names.map(async (name) => {
    const sql = await Deno.readTextFile(join(dir, name));
    return { name, sql, checksum: await sha256(sql) };
  }));
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function ensureTable(sql: Queryable) {
  await sql`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`;
}

async function applied(sql: Queryable): Promise<Map<string, string>> {
  const rows = await sql<{ name: string; checksum: string }[]>`
    SELECT name, checksum FROM schema_migrations`;
  return new Map(rows.map((r) => [r.name, r.checksum]));
}

/**
 * Earlier contents of files that were edited after they had landed (a mistake, not a
 * practice): a database that applied such a version is not refused, and a later migration
 * brings it to the current definition.
 */
export const EARLIER_VERSIONS: Record<string, { checksums: string[]; completedBy: string }> = {
  "0005_one_rule_each.sql": {
    checksums: ["fe8dc5d859fae3d122330dc5c755fb7c3626042fa49ed4034d962a36e5076b7c"],
    completedBy: "0011_apply_xp_deadline.sql",
  },
};

function verify(done: Map<string, string>, files: Migration[]) {
  for (const file of files) {
    const checksum = done.get(file.name);
    if (
      checksum && checksum !== file.checksum && !EARLIER_VERSIONS[file.name]?.checksums.includes(checksum)
    ) {
      throw new MigrationTampered(
        `migration ${file.name} was changed after it was applied (checksum differs); restore it and add a new migration instead`,
      );
    }
  }
}

/** Applies pending migrations; returns the names applied by this call. */
export async function migrate(sql: Sql, files?: Migration[]): Promise<string[]> {
  const migrations = files ?? await readMigrations();
  const appliedNow: string[] = [];
  await transaction(sql, async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    await ensureTable(tx);
  });
  for (const file of migrations) {
    await transaction(sql, async (tx) => {
      // The lock is held per file, so two instances never apply the same one.
      await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
      const done = await applied(tx);
      verify(done, migrations);
      if (done.has(file.name)) return;
      await tx.unsafe(file.sql);
      await tx`INSERT INTO schema_migrations (name, checksum) VALUES (${file.name}, ${file.checksum})`;
      appliedNow.push(file.name);
    });
  }
  return appliedNow;
}

/** Names of migrations not yet applied (throws MigrationTampered on a changed file). */
export async function pendingMigrations(sql: Queryable, files?: Migration[]): Promise<string[]> {
  const migrations = files ?? await readMigrations();
  const [{ exists }] = await sql<{ exists: boolean }[]>`
    SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`;
  const done = exists ? await applied(sql) : new Map<string, string>();
  verify(done, migrations);
  return migrations.filter((m) => !done.has(m.name)).map((m) => m.name);
}

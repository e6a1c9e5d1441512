/**
 * The anonymized staging copy (production readiness plan): active users with
 * their progress, licenses and XP ledger, streamed with COPY from a production
 * database into a migrated, empty staging database.
 *
 * - The source is only read: every query there runs in a READ ONLY
 *   transaction, the COPYs in one REPEATABLE READ READ ONLY transaction (one
 *   snapshot).
 * - Settings are made inside transactions, never as startup parameters, so
 *   either URL may go through PgBouncer in transaction pooling.
 * - Emails, names (and, by default, password hashes) are replaced in the
 *   source's own SELECT, so the real values never leave the source.
 * - The target is written in one transaction: a failure leaves it empty.
 * - Rows flow through this process as COPY chunks with backpressure, so its
 *   memory stays flat however large the source is.
 */
import postgres from "postgres";
import { copyStream } from "./copy_stream.ts";
import { APPLICATION_NAME, clientOptions, describe, type Queryable, type Sql } from "./db.ts";
import { DatabaseUnavailable, DomainError, MigrationTampered } from "./errors.ts";
import { type Migration, pendingMigrations, readMigrations } from "./migrate.ts";
import { firstAnswer, NoPostgresAnswer } from "./handshake.ts";
import { hashPassword } from "./password.ts";
import { transaction } from "./connection.ts";

/** The export was refused before anything was written (the message says why, in one line). */
export class ExportRefused extends DomainError {
  override name = "ExportRefused";
}

/** The tables copied, in copy order (referenced before referencing). */
export const STAGING_TABLES = ["users", "specialization_progress", "user_licenses", "xp_events"] as const;
/** One copied table. */
export type StagingTable = typeof STAGING_TABLES[number];

/** What to copy, from where to where. */
export interface StagingExportOptions {
  /** The production database (postgres:// URL); only read. */
  from: string;
  /** A migrated, empty staging database (postgres:// URL). */
  to: string;
  /** Passwords for URLs that carry none (from a password file: lib/pgpass.ts). */
  passwords?: { from?: string; to?: string };
  /** Copy only the N most recently active students (default: all); active staff are always copied. */
  limit?: number;
  /** Keep production's password hashes instead of replacing them. */
  keepPasswordHashes?: boolean;
  /** The password every copied user gets (one scrypt hash for all); required unless keepPasswordHashes. */
  stagingPassword?: string;
  /** Seconds to wait for each connection (default 10). */
  connectTimeoutS?: number;
  /** Told while a table streams: rows copied so far and the table's total. */
  onProgress?: (table: StagingTable, done: number, total: number) => void;
  /** This checkout's migrations (default: migrations/*.sql). */
  migrations?: Migration[];
}

/** What was copied. */
export interface StagingExportResult {
  students: number;
  staff: number;
  /** Progress rows (student/specialization pairs). */
  progressRows: number;
  licenses: number;
  ledgerRows: number;
  /** True when the hashes were replaced by the STAGING_PASSWORD's. */
  passwordsReplaced: boolean;
  /** False when the final ANALYZE failed (the copy itself is committed). */
  analyzed: boolean;
  seconds: number;
}

/** Source counts and id ceilings, read in the export's snapshot. */
interface Snapshot {
  students: number;
  staff: number;
  progress: number;
  licenses: number;
  events: number;
  users_max: number | null;
  progress_max: number | null;
  licenses_max: number | null;
  events_max: number | null;
}

/** The copied columns of each table, in COPY order. */
const COLUMNS: Record<StagingTable, string[]> = {
  users: ["id", "email", "hashed_password", "full_name", "role", "is_active", "created_at", "updated_at"],
  specialization_progress: [
    "id",
    "student_id",
    "specialization_id",
    "current_level",
    "total_xp",
    "created_at",
    "updated_at",
  ],
  user_licenses: [
    "id",
    "user_id",
    "specialization_type",
    "current_level",
    "max_achieved_level",
    "created_at",
    "updated_at",
  ],
  xp_events: [
    "id",
    "student_id",
    "specialization_id",
    "xp_change",
    "xp_before",
    "xp_after",
    "level_before",
    "level_after",
    "actor_id",
    "source",
    "request_id",
    "idempotency_key",
    "created_at",
  ],
};

/** Server-generated request ids (hono's requestId: crypto.randomUUID()); anything else was client-chosen. */
const UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/**
 * The ids of the users to copy, as SQL. All active users; with a limit, the
 * active staff (so staging has an admin) plus the `limit` students active
 * most recently: the latest of users.updated_at, their newest ledger entry
 * and their newest progress change, ties broken by the higher id.
 */
export function selectedUsersSql(limit?: number): string {
  if (limit === undefined) return "SELECT id FROM users WHERE is_active";
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`bad limit ${limit}`);
  return `
    SELECT id FROM users WHERE is_active AND role <> 'STUDENT'
    UNION ALL
    (SELECT u.id FROM users u
     LEFT JOIN (SELECT student_id, max(created_at) AS at FROM xp_events GROUP BY student_id) e
       ON e.student_id = u.id
     LEFT JOIN (SELECT student_id, max(updated_at) AS at FROM specialization_progress GROUP BY student_id) p
       ON p.student_id = u.id
     WHERE u.is_active AND u.role = 'STUDENT'
     ORDER BY greatest(u.updated_at, e.at, p.at) DESC, u.id DESC
     LIMIT ${limit})`;
}

/** The source's SELECT of one table: the selected users' rows, anonymized. `password` is SQL. */
function sourceSelect(table: StagingTable, selected: string, password: string): string {
  switch (table) {
    case "users":
      return `SELECT u.id, 'user_' || u.id || '@staging.example.com', ${password}, 'Staging User ' || u.id,
                     u.role, u.is_active, u.created_at, u.updated_at
              FROM users u WHERE u.id IN (${selected}) ORDER BY u.id`;
    case "specialization_progress":
      return `SELECT ${COLUMNS[table].map((c) => `p.${c}`).join(", ")}
              FROM specialization_progress p WHERE p.student_id IN (${selected}) ORDER BY p.id`;
    case "user_licenses":
      return `SELECT ${COLUMNS[table].map((c) => `l.${c}`).join(", ")}
              FROM user_licenses l WHERE l.user_id IN (${selected}) ORDER BY l.id`;
    case "xp_events":
      // An actor who is not copied (inactive staff) becomes NULL, so the foreign key holds.
      // Idempotency keys are client-chosen strings: never copied. Request ids are kept
      // only in the server-generated UUID form (clients may send their own X-Request-Id).
      return `SELECT e.id, e.student_id, e.specialization_id, e.xp_change, e.xp_before, e.xp_after,
                     e.level_before, e.level_after,
                     CASE WHEN e.actor_id IN (${selected}) THEN e.actor_id END,
                     e.source,
                     CASE WHEN e.request_id ~ '${UUID_PATTERN}' THEN e.request_id END,
                     NULL, e.created_at
              FROM xp_events e WHERE e.student_id IN (${selected}) ORDER BY e.id`;
  }
}

/**
 * Opens one connection to a side; throws a one-line error naming the side when it does not answer.
 * Its only startup parameter is application_name (PgBouncer refuses the others, such as
 * statement_timeout), and no named prepared statements (a pooler's next transaction may run
 * on another server connection).
 */
async function connect(side: "from" | "to", url: string, timeoutS: number, pass?: string): Promise<Sql> {
  const base = clientOptions({ DB_CONNECT_TIMEOUT_S: timeoutS, DB_STATEMENT_TIMEOUT_MS: 0 }, 1, {
    pooled: true,
  });
  const sql = postgres(url, {
    ...base,
    ...pass === undefined ? {} : { pass },
    connection: { application_name: `${APPLICATION_NAME}:staging-export` },
  });
  try {
    await firstAnswer(sql, url, timeoutS);
  } catch (err) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw new DatabaseUnavailable(connectFailure(side, err));
  }
  return sql;
}

/** The one line telling why a side's connection failed. */
export function connectFailure(side: "from" | "to", err: unknown): string {
  const code = (err as { code?: string }).code;
  if (/unsupported startup parameter/i.test((err as Error)?.message ?? "")) {
    return `the --${side} database (a pooler?) refused a connection setting: ${describe(err)}; ` +
      "give a direct URL to the database instead";
  }
  if (err instanceof NoPostgresAnswer) return `the --${side} database is unreachable: ${err.message}`;
  const what = code === "28P01" || code === "28000"
    ? "refused our credentials"
    : code === "3D000"
    ? "does not exist"
    : "is unreachable";
  return `the --${side} database ${what}: ${describe(err)}`;
}

/** Runs `fn` in a READ ONLY transaction of the source: nothing there can write. */
function readOnly<T>(source: Sql, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return transaction(source, "read only", fn) as Promise<T>;
}

/**
 * True when both connections reach the same database of the same cluster (URL spellings
 * differ; this does not): the clusters' system identifiers and the database names. Where
 * pg_control_system() is not granted (managed services revoke it), a handshake instead:
 * the source takes an advisory lock with a random key, and the target looks for it among
 * the locks of its own database (pg_locks shows the whole cluster's, with their database).
 */
export async function sameDatabase(source: Sql, target: Sql): Promise<boolean> {
  try {
    const from = await readOnly(source, identity);
    return from === await identity(target);
  } catch (err) {
    if ((err as { code?: string }).code !== "42501") throw err;
  }
  const [classid, objid] = crypto.getRandomValues(new Uint32Array(2)).map((k) => k >>> 1);
  return await readOnly(source, async (tx) => {
    await tx`SELECT pg_advisory_xact_lock_shared(${classid}::int, ${objid}::int)`;
    const [{ seen }] = await target<{ seen: boolean }[]>`
      SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND classid = ${classid}::int::oid AND objid = ${objid}::int::oid
          AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      ) AS seen`;
    return seen;
  });
}

/** Which cluster and database a connection reached. */
async function identity(q: Queryable): Promise<string> {
  const [row] = await q<{ system: string; db: string }[]>`
    SELECT system_identifier::text AS system, current_database() AS db FROM pg_control_system()`;
  return `${row.system}/${row.db}`;
}

/** Refuses a database whose migrations are not exactly this checkout's. */
async function checkMigrations(sql: Queryable, side: "from" | "to", files: Migration[]): Promise<void> {
  const [{ exists }] = await sql<{ exists: boolean }[]>`
    SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`;
  if (side === "from" && !exists) {
    throw new ExportRefused("the --from database is not a Levelguard database (no schema_migrations table)");
  }
  let pending: string[];
  try {
    pending = await pendingMigrations(sql, files);
  } catch (err) {
    if (err instanceof MigrationTampered) throw new ExportRefused(`the --${side} database: ${err.message}`);
    throw err;
  }
  if (pending.length) {
    const list = `pending: ${pending.join(", ")}`;
    throw new ExportRefused(
      side === "to"
        ? `the --to database is not migrated (${list}); run deno task migrate against the target first`
        : `the --from database lacks migrations of this checkout (${list}); use the checkout production runs`,
    );
  }
  const known = files.map((f) => f.name);
  const unknown = await sql<{ name: string }[]>`
    SELECT name FROM schema_migrations WHERE name <> ALL(${known}::text[]) ORDER BY name`;
  if (unknown.length) {
    const list = unknown.map((r) => r.name).join(", ");
    throw new ExportRefused(
      `the --${side} database has migrations this checkout does not know (${list}); ` +
        (side === "to" ? "recreate the target with this checkout" : "use the checkout production runs"),
    );
  }
}

/**
 * The tables a fresh `deno task migrate` fills (the migrations' bookkeeping, reference data and
 * settings): rows there do not make a target "not empty". A test compares this list with a
 * freshly migrated database.
 */
export const SEEDED_TABLES = [
  "app_settings",
  "schema_migrations",
  "specialization_levels",
  "specializations",
];

/**
 * The application's tables (those of schema_migrations' schema) that have rows, except
 * SEEDED_TABLES: leftover check history, audit rows, sessions or idempotency keys count too.
 */
export async function nonEmptyTables(q: Queryable): Promise<string[]> {
  const tables = await q<{ name: string; quoted: string }[]>`
    SELECT c.relname AS name, c.oid::regclass::text AS quoted
    FROM pg_class c
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass('schema_migrations'))
      AND c.relname <> ALL(${SEEDED_TABLES}::text[])
    ORDER BY c.relname`;
  if (!tables.length) return [];
  const [row] = await q.unsafe<Record<string, boolean>[]>(
    `SELECT ${tables.map((t, i) => `EXISTS (SELECT 1 FROM ${t.quoted}) AS t${i}`).join(", ")}`,
  );
  return tables.filter((_, i) => row[`t${i}`]).map((t) => t.name);
}

function refuseNonEmpty(tables: string[]) {
  if (tables.length) {
    throw new ExportRefused(
      `the --to database is not empty (${tables.join(", ")} ${tables.length > 1 ? "have" : "has"} rows); ` +
        "staging:export fills an empty, migrated database",
    );
  }
}

/** Runs the export; throws ExportRefused (nothing written) or the failure (the target rolled back). */
export async function exportStaging(options: StagingExportOptions): Promise<StagingExportResult> {
  const started = performance.now();
  const replace = !options.keepPasswordHashes;
  if (replace && !options.stagingPassword) {
    throw new ExportRefused("set a staging password, or keep the password hashes");
  }
  const files = options.migrations ?? await readMigrations();
  const timeout = options.connectTimeoutS ?? 10;
  const [from, to] = await Promise.allSettled([
    connect("from", options.from, timeout, options.passwords?.from),
    connect("to", options.to, timeout, options.passwords?.to),
  ]);
  const close = () =>
    Promise.all(
      [from, to].map((s) => s.status === "fulfilled" && s.value.end({ timeout: 0 }).catch(() => {})),
    );
  try {
    if (from.status === "rejected") throw from.reason;
    if (to.status === "rejected") throw to.reason;
    const source = from.value;
    const target = to.value;

    // Refusals, before anything is written anywhere.
    if (await sameDatabase(source, target)) {
      throw new ExportRefused(
        "--from and --to are the same database; staging:export copies into another one",
      );
    }
    await readOnly(source, (tx) => checkMigrations(tx, "from", files));
    await checkMigrations(target, "to", files);
    const notOwned = await tablesNotOwned(target);
    if (notOwned.length) {
      const what = `the --to role does not own ${notOwned.join(", ")}`;
      throw new ExportRefused(
        `${what} (the load switches their foreign keys off); connect as the role that ran deno task migrate`,
      );
    }
    refuseNonEmpty(await nonEmptyTables(target));
    const hash = replace ? await hashPassword(options.stagingPassword!) : null;

    const counts = await copyAll(source, target, options, hash);
    // Fresh statistics for the planner, after the commit (ANALYZE then sees the rows). Not
    // fatal: the copy is committed, and autovacuum analyzes the tables later anyway.
    const analyzed = await transaction(target, async (tx) => {
      await tx`SET LOCAL statement_timeout = 0`;
      await tx.unsafe(`ANALYZE ${STAGING_TABLES.join(", ")}`);
    }).then(() => true, () => false);
    return {
      students: counts.students,
      staff: counts.staff,
      progressRows: counts.progress,
      licenses: counts.licenses,
      ledgerRows: counts.events,
      passwordsReplaced: replace,
      analyzed,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    // After a failure a source COPY may be half-read: end the connections rather than wait on them.
    await close();
  }
}

/** The target's foreign keys on the copied tables, and its GENERATED ALWAYS identity columns there. */
interface TargetSchema {
  foreignKeys: { table: string; name: string; definition: string }[];
  alwaysIdentities: { table: string; column: string }[];
}

async function targetSchema(q: Queryable): Promise<TargetSchema> {
  const tables = [...STAGING_TABLES];
  const foreignKeys = await q<TargetSchema["foreignKeys"]>`
    SELECT conrelid::regclass::text AS table, quote_ident(conname) AS name, pg_get_constraintdef(oid) AS definition
    FROM pg_constraint
    WHERE contype = 'f' AND conrelid = ANY (${tables}::regclass[])
    ORDER BY conrelid::regclass::text, conname`;
  const alwaysIdentities = await q<TargetSchema["alwaysIdentities"]>`
    SELECT attrelid::regclass::text AS table, quote_ident(attname) AS column
    FROM pg_attribute
    WHERE attidentity = 'a' AND attrelid = ANY (${tables}::regclass[])
    ORDER BY attrelid::regclass::text`;
  return { foreignKeys: [...foreignKeys], alwaysIdentities: [...alwaysIdentities] };
}

/** The copied tables this role may not alter (it must own them: it switches constraints off while loading). */
async function tablesNotOwned(q: Queryable): Promise<string[]> {
  const rows = await q<{ table: string }[]>`
    SELECT relname AS table FROM pg_class
    WHERE oid = ANY (${[...STAGING_TABLES]}::regclass[]) AND NOT pg_has_role(relowner, 'USAGE')
    ORDER BY relname`;
  return rows.map((r) => r.table);
}

/**
 * Copies everything in one target transaction; the source is read in one
 * snapshot, held only while the COPYs stream.
 *
 * Loading the way pg_restore does: the copied tables' foreign keys are dropped
 * and re-added after the load, one validating join each instead of a lookup
 * and a row lock per inserted row (measured at 100,000 students: ~3 s a table
 * with per-row checks; 0.6 s to load it and 0.14 s to validate without), and
 * the GENERATED ALWAYS ids are switched to BY DEFAULT meanwhile, so COPY keeps
 * production's ids. All of it is DDL inside the transaction: a failure rolls
 * it back with the rows. Hence the refusal of a role that does not own them.
 */
async function copyAll(
  source: Sql,
  target: Sql,
  options: StagingExportOptions,
  hash: string | null,
): Promise<Snapshot> {
  let failure: unknown;
  try {
    return await transaction(target, async (dst) => {
      // No statement timeout: a COPY of a big table takes its time.
      await dst`SET LOCAL statement_timeout = 0`;
      await dst`SET LOCAL lock_timeout = '10s'`;
      // Nobody reads or writes the copied tables meanwhile; then check again that they are empty.
      await dst.unsafe(`LOCK TABLE ${STAGING_TABLES.join(", ")} IN ACCESS EXCLUSIVE MODE`);
      refuseNonEmpty(await nonEmptyTables(dst));
      const schema = await targetSchema(dst);
      for (const fk of schema.foreignKeys) {
        await dst.unsafe(`ALTER TABLE ${fk.table} DROP CONSTRAINT ${fk.name}`);
      }
      for (const id of schema.alwaysIdentities) {
        await dst.unsafe(`ALTER TABLE ${id.table} ALTER COLUMN ${id.column} SET GENERATED BY DEFAULT`);
      }

      const snapshot = await transaction(source, "isolation level repeatable read read only", async (src) => {
        try {
          return await readSource(src, dst, options, hash);
        } catch (err) {
          // A COPY may be half-read, and postgres.js would wait for it before the
          // rollback: end the (read-only) connection instead, and report this error.
          failure = err;
          void source.end({ timeout: 0 });
          throw err;
        }
      });
      // The source's snapshot is released; the rest happens on the target alone.

      for (const id of schema.alwaysIdentities) {
        await dst.unsafe(`ALTER TABLE ${id.table} ALTER COLUMN ${id.column} SET GENERATED ALWAYS`);
      }
      // Validates every row: a foreign key the copy broke fails the export here.
      for (const fk of schema.foreignKeys) {
        await dst.unsafe(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${fk.name} ${fk.definition}`);
      }
      const [copied] = await dst<Record<StagingTable, number>[]>`
        SELECT (SELECT count(*) FROM users) AS users,
               (SELECT count(*) FROM specialization_progress) AS specialization_progress,
               (SELECT count(*) FROM user_licenses) AS user_licenses,
               (SELECT count(*) FROM xp_events) AS xp_events`;
      const expected = totalsOf(snapshot);
      for (const t of STAGING_TABLES) {
        if (copied[t] !== expected[t]) {
          throw new Error(`${t}: copied ${copied[t]} rows, the source has ${expected[t]}`);
        }
      }

      // New rows in staging get ids above every production id (copied or not). Last,
      // because setval is not undone by a rollback.
      const ceilings: [StagingTable, number | null][] = [
        ["users", snapshot.users_max],
        ["specialization_progress", snapshot.progress_max],
        ["user_licenses", snapshot.licenses_max],
        ["xp_events", snapshot.events_max],
      ];
      for (const [t, max] of ceilings) {
        await dst`
          SELECT setval(pg_get_serial_sequence(${t}, 'id'),
                        greatest(${max}::bigint, (SELECT max(id) FROM ${dst(t)}), 1),
                        greatest(${max}::bigint, (SELECT max(id) FROM ${dst(t)})) IS NOT NULL)`;
      }
      return snapshot;
    });
  } catch (err) {
    throw failure ?? err;
  }
}

function totalsOf(counts: Snapshot): Record<StagingTable, number> {
  return {
    users: counts.students + counts.staff,
    specialization_progress: counts.progress,
    user_licenses: counts.licenses,
    xp_events: counts.events,
  };
}

/** Streams every table from the source's snapshot into the target; returns the snapshot's counts. */
async function readSource(
  src: Queryable,
  dst: Queryable,
  options: StagingExportOptions,
  hash: string | null,
): Promise<Snapshot> {
  await src`SET LOCAL statement_timeout = 0`;
  // The first query takes the snapshot every COPY below reads. With --limit, the
  // students are chosen once, here: choosing them aggregates the whole ledger
  // (~5 s at 1M students), and each of the five queries below would do it again.
  // Their ids come back as one array literal (digits and commas, ~8 bytes a
  // student: memory grows with the limit, never with the source).
  let selected = selectedUsersSql(options.limit);
  if (options.limit !== undefined) {
    const [{ ids }] = await src.unsafe<{ ids: string }[]>(
      `SELECT coalesce(array_agg(id ORDER BY id), '{}')::text AS ids FROM (${selected}) s`,
    );
    if (!/^\{[\d,]*\}$/.test(ids)) throw new Error(`unexpected id list ${ids.slice(0, 40)}`);
    selected = `SELECT unnest('${ids}'::int[])`;
  }
  const [counts] = await src.unsafe<Snapshot[]>(`
    SELECT
      (SELECT count(*) FROM users WHERE id IN (${selected}) AND role = 'STUDENT') AS students,
      (SELECT count(*) FROM users WHERE id IN (${selected}) AND role <> 'STUDENT') AS staff,
      (SELECT count(*) FROM specialization_progress WHERE student_id IN (${selected})) AS progress,
      (SELECT count(*) FROM user_licenses WHERE user_id IN (${selected})) AS licenses,
      (SELECT count(*) FROM xp_events WHERE student_id IN (${selected})) AS events,
      (SELECT max(id) FROM users) AS users_max,
      (SELECT max(id) FROM specialization_progress) AS progress_max,
      (SELECT max(id) FROM user_licenses) AS licenses_max,
      (SELECT max(id) FROM xp_events) AS events_max`);
  // COPY takes no bind parameters: the hash goes in as a literal quoted by the server itself.
  const password = hash === null
    ? "u.hashed_password"
    : (await src<{ literal: string }[]>`SELECT format('%L', ${hash}::text) AS literal`)[0].literal;
  const totals = totalsOf(counts);
  for (const t of STAGING_TABLES) {
    options.onProgress?.(t, 0, totals[t]);
    const into = `${t} (${COLUMNS[t].join(", ")})`;
    const rows = await copyStream(src, dst, sourceSelect(t, selected, password), into, (n) => {
      options.onProgress?.(t, n, totals[t]);
    });
    if (rows !== totals[t]) throw new Error(`${t}: streamed ${rows} rows, the source has ${totals[t]}`);
  }
  return counts;
}

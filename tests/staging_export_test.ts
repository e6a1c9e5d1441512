import postgres from "postgres";
import { assert, assertEquals, assertMatch, assertRejects } from "./_assert.ts";
import { clientOptions, type Sql } from "../lib/db.ts";
import { IntegrityRunner } from "../lib/integrity/runner.ts";
import { verifyPassword } from "../lib/password.ts";
import { seed } from "../lib/seed.ts";
import { findPgBouncer, startPgBouncer } from "./support/pgbouncer.ts";
import {
  connectFailure,
  ExportRefused,
  exportStaging,
  nonEmptyTables,
  sameDatabase,
  SEEDED_TABLES,
  STAGING_TABLES,
} from "../lib/staging_export.ts";
import { createTestDatabase, hasServer, type TestDatabase } from "./_db.ts";
import { closedPort } from "./_fixture.ts";
import { breakKnownPairs, type Expected, sortExpected } from "./_integrity.ts";
import { runScript } from "./_process.ts";

const STAGING_PASSWORD = "staging-password-1";
const STUDENT_PASSWORD = "student-password-1";
const FILL_APP = "levelguard-test-fill";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The production-like source: who is who. */
interface Source {
  db: TestDatabase;
  adminId: number;
  instructorId: number;
  /** An instructor who awarded XP and was deactivated since: not copied. */
  goneInstructorId: number;
  /** A deactivated student: not copied. */
  inactiveStudentId: number;
  /** Ledger rows with a client-chosen request id and with an idempotency key. */
  clientRequestId: string;
}

/**
 * Seeds `students` students (5 % of pairs desynced, plus one violation of every
 * kind), staff, an inactive instructor and student, and XP awarded through
 * apply_xp with request ids and idempotency keys; on a connection of its own,
 * closed afterwards (so its statistics are flushed).
 */
async function fillSource(db: TestDatabase, students: number): Promise<Source> {
  const sql = postgres(db.url, {
    ...clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 60_000 }, 1),
    connection: { application_name: FILL_APP },
  });
  try {
    const seeded = await seed(sql, {
      students,
      desyncRate: 0.05,
      adminEmail: "head.coach@academy.example.com",
      adminPassword: "admin-password-1",
      studentPassword: STUDENT_PASSWORD,
      randomSeed: 7,
    });
    await breakKnownPairs(sql);
    const [gone] = await sql<{ id: number }[]>`
      INSERT INTO users (email, hashed_password, full_name, role)
      VALUES ('gone.instructor@academy.example.com', 'x', 'Gone Instructor', 'INSTRUCTOR') RETURNING id`;
    const clientRequestId = "alice_smith_laptop";
    const award = (student: number, spec: string, actor: number, requestId: string, key: string | null) =>
      sql`SELECT outcome FROM apply_xp(${student}, ${spec}, 40, ${actor}, ${requestId}, ${key}, NULL)`;
    await award(5, "PLAYER", gone.id, crypto.randomUUID(), "retry-key-of-alice");
    await award(6, "COACH", seeded.adminId, clientRequestId, null);
    await award(8, "PLAYER", seeded.instructorId, crypto.randomUUID(), null);
    await sql`UPDATE users SET is_active = false, updated_at = now() WHERE id IN (${gone.id}, 7)`;
    return {
      db,
      adminId: seeded.adminId,
      instructorId: seeded.instructorId,
      goneInstructorId: gone.id,
      inactiveStudentId: 7,
      clientRequestId,
    };
  } finally {
    await sql.end();
    // Statistics are flushed when a backend ends: wait for it, so later reads include these writes.
    await untilGone(db.sql, FILL_APP);
  }
}

/** A filled source and an empty, migrated target, both dropped afterwards. */
async function withSourceAndTarget(
  students: number,
  fn: (source: Source, target: TestDatabase) => Promise<void>,
): Promise<void> {
  const [sourceDb, target] = await Promise.all([
    createTestDatabase({ max: 2 }),
    createTestDatabase({ max: 2 }),
  ]);
  try {
    await fn(await fillSource(sourceDb, students), target);
  } finally {
    await Promise.all([sourceDb.close(), target.close()]);
  }
}

/** Rows of the copied tables' columns, limited to active users' rows (on the target: all of them). */
async function activeRows(sql: Sql) {
  const users = await sql`
    SELECT id, role, is_active, created_at, updated_at FROM users WHERE is_active ORDER BY id`;
  const progress = await sql`
    SELECT id, student_id, specialization_id, current_level, total_xp, created_at, updated_at
    FROM specialization_progress WHERE student_id IN (SELECT id FROM users WHERE is_active) ORDER BY id`;
  const licenses = await sql`
    SELECT id, user_id, specialization_type, current_level, max_achieved_level, created_at, updated_at
    FROM user_licenses WHERE user_id IN (SELECT id FROM users WHERE is_active) ORDER BY id`;
  const ledger = await sql`
    SELECT id, student_id, specialization_id, xp_change, xp_before, xp_after, level_before, level_after,
           source, created_at
    FROM xp_events WHERE student_id IN (SELECT id FROM users WHERE is_active) ORDER BY id`;
  return { users: [...users], progress: [...progress], licenses: [...licenses], ledger: [...ledger] };
}

/** Row counts of the copied tables. */
async function counts(sql: Sql): Promise<Record<string, number>> {
  const [row] = await sql.unsafe(
    `SELECT ${STAGING_TABLES.map((t) => `(SELECT count(*)::int FROM ${t}) AS ${t}`).join(", ")}`,
  );
  return { ...row };
}

const EMPTY = Object.fromEntries(STAGING_TABLES.map((t) => [t, 0]));

/** The foreign keys and identity columns of a database's schema. */
async function schemaShape(sql: Sql) {
  const fks = await sql`
    SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def, convalidated
    FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2`;
  const identities = await sql`
    SELECT attrelid::regclass::text AS t, attname, attidentity FROM pg_attribute
    WHERE attidentity <> '' ORDER BY 1, 2`;
  const sequences = await sql`SELECT sequencename, last_value FROM pg_sequences ORDER BY 1`;
  return { fks: [...fks], identities: [...identities], sequences: [...sequences] };
}

/** Waits until no backend of `application_name LIKE pattern` is left on the database. */
async function untilGone(sql: Sql, pattern: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [{ n }] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE ${pattern}`;
    if (n === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`backends ${pattern} are still connected`);
}

/** Every row of every table (count and md5), and the write statistics of each. */
async function databaseState(sql: Sql) {
  const tables = await sql<{ name: string }[]>`
    SELECT quote_ident(table_name) AS name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`;
  const data: Record<string, string> = {};
  for (const { name } of tables) {
    const [row] = await sql.unsafe(
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS sum
       FROM ${name} t`,
    );
    data[name] = `${row.n} rows, md5 ${row.sum}`;
  }
  await sql`SELECT pg_stat_clear_snapshot()`;
  const writes = await sql`
    SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY relname`;
  return { data, writes: [...writes] };
}

/** The violations a full integrity check of the database finds. */
async function scanViolations(sql: Sql, logDir: string, where = "true"): Promise<Expected[]> {
  const check = await new IntegrityRunner(sql, { logDir, historyDays: 30 }).run("cli");
  assertEquals(check.outcome, "success", check.error ?? "");
  const rows = await sql.unsafe<Expected[]>(
    `SELECT kind, student_id, specialization_id FROM integrity_violations WHERE check_id = $1 AND ${where}`,
    [check.id],
  );
  return sortExpected([...rows]);
}

/** `promise`, or a rejection after `ms`. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error(`hung for ${ms} ms`)), ms)
  );
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Another spelling of the same database's URL (host name, scheme, a query parameter). */
/**
 * A role of its own for a test, with a password: a server that asks for passwords (not only one that
 * trusts local connections) lets it in.
 */
function testRole(): { role: string; password: string } {
  const id = crypto.randomUUID().replaceAll("-", "");
  return { role: `lg_test_role_${id.slice(0, 12)}`, password: `pw_${id.slice(12)}` };
}

function otherSpelling(url: string): string {
  const u = new URL(url.replace(/^postgres:/, "postgresql:"));
  if (u.hostname === "127.0.0.1") u.hostname = "localhost";
  u.searchParams.set("application_name", "another-spelling");
  return u.toString();
}

Deno.test({
  name:
    "active users arrive with their progress, licenses and ledger: ids and values unchanged, keys holding",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(2000, async (source, target) => {
    const result = await exportStaging({
      from: source.db.url,
      to: target.url,
      stagingPassword: STAGING_PASSWORD,
    });

    const [want, got] = await Promise.all([activeRows(source.db.sql), activeRows(target.sql)]);
    assertEquals(got.users, want.users);
    assertEquals(got.progress, want.progress);
    assertEquals(got.licenses, want.licenses);
    assertEquals(got.ledger, want.ledger);
    // Nothing else: the target holds exactly the active users' rows.
    assertEquals(await counts(target.sql), {
      users: want.users.length,
      specialization_progress: want.progress.length,
      user_licenses: want.licenses.length,
      xp_events: want.ledger.length,
    });
    assertEquals(result.students + result.staff, want.users.length);
    assertEquals([result.staff, result.progressRows, result.licenses, result.ledgerRows], [
      2,
      want.progress.length,
      want.licenses.length,
      want.ledger.length,
    ]);
    assert(result.analyzed);
    const ids = new Set(want.users.map((u) => u.id));
    assert(
      !ids.has(source.inactiveStudentId) && !ids.has(source.goneInstructorId),
      "inactive users stay behind",
    );

    // The ledger's actor is kept when copied, else NULL; keys never, request ids only when server-made.
    const actors = await source.db.sql`
      SELECT e.id, CASE WHEN a.is_active THEN e.actor_id END AS actor_id, e.request_id
      FROM xp_events e LEFT JOIN users a ON a.id = e.actor_id
      WHERE e.student_id IN (SELECT id FROM users WHERE is_active) ORDER BY e.id`;
    const copied = await target
      .sql`SELECT id, actor_id, request_id, idempotency_key FROM xp_events ORDER BY id`;
    assertEquals(
      copied.map((r) => [r.id, r.actor_id, r.request_id]),
      actors.map((
        r,
      ) => [r.id, r.actor_id, r.request_id === null || UUID.test(r.request_id) ? r.request_id : null]),
    );
    assert(copied.every((r) => r.idempotency_key === null));
    const [award] = await source.db.sql`SELECT id FROM xp_events WHERE actor_id = ${source.goneInstructorId}`;
    assertEquals(copied.find((r) => r.id === award.id)?.actor_id, null);
    assert(copied.some((r) => UUID.test(r.request_id ?? "")), "server-made request ids are kept");
    assert(!copied.some((r) => r.request_id === source.clientRequestId), "client-chosen request ids are not");

    // The schema is as migrated: the same validated foreign keys and identities.
    const [shapeBefore, shapeAfter] = await Promise.all([
      schemaShape(source.db.sql),
      schemaShape(target.sql),
    ]);
    assertEquals(shapeAfter.fks, shapeBefore.fks);
    assertEquals(shapeAfter.identities, shapeBefore.identities);
    // New rows in staging get ids above every production id.
    for (const t of STAGING_TABLES) {
      const [{ max }] = await source.db.sql.unsafe(`SELECT max(id) AS max FROM ${t}`);
      const [{ next }] = await target.sql.unsafe(
        `SELECT nextval(pg_get_serial_sequence('${t}', 'id')) AS next`,
      );
      assertEquals(next, max + 1, t);
    }
  }));

Deno.test({
  name: "no production email or name reaches staging, and every password becomes STAGING_PASSWORD",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(2000, async (source, target) => {
    const result = await exportStaging({
      from: source.db.url,
      to: target.url,
      stagingPassword: STAGING_PASSWORD,
    });
    assert(result.passwordsReplaced);
    const people = await source.db.sql<{ email: string; full_name: string }[]>`
      SELECT email, full_name FROM users`;
    const secrets = people.flatMap((p) => [p.email, p.full_name]).filter((v) => v.length > 0);

    const leaks = await target.sql.begin(async (tx) => {
      await tx`CREATE TEMP TABLE pii (v text) ON COMMIT DROP`;
      await tx`INSERT INTO pii SELECT DISTINCT lower(v) FROM unnest(${secrets}::text[]) AS v`;
      await tx`CREATE TEMP TABLE seen (t text, c text, v text) ON COMMIT DROP`;
      // Every text-like column of every table, whatever its name.
      const columns = await tx<{ t: string; c: string }[]>`
        SELECT quote_ident(table_name) AS t, quote_ident(column_name) AS c FROM information_schema.columns
        WHERE table_schema = 'public' AND (data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
          OR udt_name IN ('_text', '_varchar'))`;
      assert(columns.length >= 20, `${columns.length} text columns`);
      for (const { t, c } of columns) {
        await tx.unsafe(
          `INSERT INTO seen SELECT DISTINCT '${t}', '${c}', lower(${c}::text) FROM ${t} WHERE ${c} IS NOT NULL`,
        );
      }
      const [{ values }] = await tx<{ values: number }[]>`SELECT count(*)::int AS values FROM seen`;
      assert(values > 4000, `${values} distinct values scanned`);
      return await tx`SELECT s.t, s.c, s.v, p.v AS secret FROM seen s JOIN pii p ON position(p.v IN s.v) > 0 LIMIT 5`;
    });
    assertEquals([...leaks], []);

    const [{ wrong }] = await target.sql<{ wrong: number }[]>`
      SELECT count(*)::int AS wrong FROM users
      WHERE email <> 'user_' || id || '@staging.example.com' OR full_name <> 'Staging User ' || id`;
    assertEquals(wrong, 0);
    const hashes = await target.sql<
      { hashed_password: string }[]
    >`SELECT DISTINCT hashed_password FROM users`;
    assertEquals(hashes.length, 1, "one hash for everyone");
    assert(await verifyPassword(STAGING_PASSWORD, hashes[0].hashed_password));
    assert(!await verifyPassword(STUDENT_PASSWORD, hashes[0].hashed_password));
  }));

Deno.test({
  name: "--keep-password-hashes keeps production's hashes and still anonymizes",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(100, async (source, target) => {
    const result = await exportStaging({ from: source.db.url, to: target.url, keepPasswordHashes: true });
    assert(!result.passwordsReplaced);
    const want = await source.db.sql`SELECT id, hashed_password FROM users WHERE is_active ORDER BY id`;
    const got = await target.sql`SELECT id, hashed_password FROM users ORDER BY id`;
    assertEquals([...got], [...want]);
    assert(await verifyPassword(STUDENT_PASSWORD, got[0].hashed_password));
    const [{ n }] = await target.sql`SELECT count(*)::int AS n FROM users WHERE email LIKE '%academy%'`;
    assertEquals(n, 0);
  }));

Deno.test({
  name: "the staging copy's integrity scan finds exactly production's violations of the copied students",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(2000, async (source, target) => {
    await exportStaging({ from: source.db.url, to: target.url, stagingPassword: STAGING_PASSWORD });
    const logDir = await Deno.makeTempDir({ prefix: "levelguard-test-logs-" });
    try {
      const copied = await scanViolations(target.sql, logDir);
      const production = await scanViolations(
        source.db.sql,
        logDir,
        "student_id IN (SELECT id FROM users WHERE is_active)",
      );
      assertEquals(copied, production);
      const kinds = new Set(copied.map((v) => v.kind));
      assertEquals(kinds.size, 6, `every kind reproduces: ${[...kinds]}`);
      assert(copied.length > 100, `${copied.length} violations`);
    } finally {
      await Deno.remove(logDir, { recursive: true });
    }
  }));

Deno.test({
  name:
    "deno task staging:export copies in one run and leaves production's rows and write statistics untouched",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(2000, async (source, target) => {
    const before = await databaseState(source.db.sql);
    const seeded = before.writes.find((r) => r.relname === "xp_events");
    assert(seeded && seeded.n_tup_ins > 2000, "the statistics hold the seeding's inserts");

    // The URLs (and their passwords, if any) come from the environment, never the command line.
    const out = await runScript("tasks/staging_export.ts", [], {
      STAGING_FROM_URL: source.db.url,
      STAGING_TO_URL: target.url,
      STAGING_PASSWORD,
    });
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.stderr, "", "no progress lines when stderr is not a terminal");
    assertMatch(
      out.stdout,
      /^copied 2,00\d users \(1,999 students, 2 staff\), [\d,]+ pairs, [\d,]+ licenses, [\d,]+ ledger rows in \d+\.\d\d s; password hashes replaced by STAGING_PASSWORD's\n$/,
    );
    const [{ users }] = await target.sql`SELECT count(*)::int AS users FROM users`;
    assertEquals(users, 2001);

    // The export's backends are gone, so their statistics are in: no row was inserted,
    // updated or deleted on the source, and every table's content is the same.
    await untilGone(source.db.sql, "%:staging-export");
    const after = await databaseState(source.db.sql);
    assertEquals(after.data, before.data);
    assertEquals(after.writes, before.writes);
  }));

Deno.test({
  name: "--limit N copies the N most recently active students and every active staff member",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(500, async (source, target) => {
    const sql = source.db.sql;
    // Recent activity of each kind: the user row, the ledger, the progress; and XP awarded just now.
    await sql`UPDATE users SET updated_at = now() + interval '3 hours' WHERE id = 30`;
    await sql`
      INSERT INTO xp_events (student_id, specialization_id, xp_change, xp_before, xp_after,
                             level_before, level_after, source, created_at)
      VALUES (10, 'PLAYER', 1, 0, 1, 1, 1, 'import', now() + interval '2 hours')`;
    await sql`UPDATE specialization_progress SET updated_at = now() + interval '1 hour' WHERE student_id = 20`;
    for (const student of [40, 50]) {
      await sql`SELECT outcome FROM apply_xp(${student}, 'COACH', 5, ${source.adminId}, ${crypto.randomUUID()}, NULL, NULL)`;
    }
    // The most recent of all, but inactive: never copied.
    await sql`UPDATE users SET updated_at = now() + interval '4 hours' WHERE id = ${source.inactiveStudentId}`;

    const result = await exportStaging({
      from: source.db.url,
      to: target.url,
      limit: 5,
      keepPasswordHashes: true,
    });
    assertEquals([result.students, result.staff], [5, 2]);
    const chosen = [10, 20, 30, 40, 50];
    const ids = await target.sql<{ id: number }[]>`SELECT id FROM users ORDER BY id`;
    assertEquals(ids.map((r) => r.id), [...chosen, source.adminId, source.instructorId]);

    // Their rows, all of them, and no one else's.
    const rowsOf = async (
      q: Sql,
      table: string,
      column: string,
    ) => [...await q.unsafe(`SELECT * FROM ${table} WHERE ${column} = ANY($1::int[]) ORDER BY id`, [chosen])];
    for (const [table, column] of [["specialization_progress", "student_id"], ["user_licenses", "user_id"]]) {
      assertEquals(await rowsOf(target.sql, table, column), await rowsOf(sql, table, column), table);
    }
    const ledger = await target.sql`SELECT id, student_id FROM xp_events ORDER BY id`;
    const want =
      await sql`SELECT id, student_id FROM xp_events WHERE student_id = ANY(${chosen}::int[]) ORDER BY id`;
    assertEquals([...ledger], [...want]);
    assertEquals(await counts(target.sql), {
      users: 7,
      specialization_progress: (await rowsOf(sql, "specialization_progress", "student_id")).length,
      user_licenses: (await rowsOf(sql, "user_licenses", "user_id")).length,
      xp_events: want.length,
    });
  }));

Deno.test(
  { name: "a failure mid-copy leaves the target empty and as migrated", ignore: !hasServer },
  () =>
    withSourceAndTarget(2000, async (source, target) => {
      const shape = await schemaShape(target.sql);
      // A failure that left a COPY stream waiting would hang the export: fail instead.
      const options = { from: source.db.url, to: target.url, stagingPassword: STAGING_PASSWORD };
      const run = () => within(30_000, exportStaging(options));

      // The last row of the last table is refused (after everything else streamed) ...
      const [{ last }] = await source.db.sql`
      SELECT max(id) AS last FROM xp_events WHERE student_id IN (SELECT id FROM users WHERE is_active)`;
      await target.sql.unsafe(`ALTER TABLE xp_events ADD CONSTRAINT test_reject_last CHECK (id <> ${last})`);
      const late = await assertRejects(run, Error);
      assertMatch(late.message, /test_reject_last/);
      assertEquals(await counts(target.sql), EMPTY);
      await target.sql`ALTER TABLE xp_events DROP CONSTRAINT test_reject_last`;

      // ... and so is the first user, early in the first COPY, while the source still sends.
      await target.sql`ALTER TABLE users ADD CONSTRAINT test_reject_first CHECK (id <> 1)`;
      const early = await assertRejects(run, Error);
      assertMatch(early.message, /test_reject_first/);
      assertEquals(await counts(target.sql), EMPTY);
      await target.sql`ALTER TABLE users DROP CONSTRAINT test_reject_first`;
      await untilGone(source.db.sql, "%:staging-export");

      assertEquals(await schemaShape(target.sql), shape, "foreign keys, identities and sequences as before");
      // The rolled-back target takes the copy afterwards.
      const result = await run();
      assertEquals((await counts(target.sql)).xp_events, result.ledgerRows);
    }),
);

Deno.test({
  name: "refusals are one line, exit 1 and write nothing: same database, non-empty or unmigrated target, " +
    "foreign source, no STAGING_PASSWORD, unreachable database",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(100, async (source, target) => {
    const [unmigrated, nonEmpty] = await Promise.all([
      createTestDatabase({ max: 1, empty: true }),
      createTestDatabase({ max: 1 }),
    ]);
    try {
      await nonEmpty.sql`
        INSERT INTO users (email, hashed_password, role) VALUES ('someone@staging.example.com', 'x', 'ADMIN')`;
      const sourceBefore = await databaseState(source.db.sql);
      const from = source.db.url;
      const secret = "secret-pw-9";
      const cases: [string, string[], Record<string, string>, RegExp][] = [
        [
          "same database (DATABASE_URL is the source when STAGING_FROM_URL is unset)",
          [],
          { DATABASE_URL: from, STAGING_TO_URL: otherSpelling(from), STAGING_PASSWORD },
          /same database/,
        ],
        [
          "non-empty target",
          [],
          { STAGING_FROM_URL: from, STAGING_TO_URL: nonEmpty.url, STAGING_PASSWORD },
          /the --to database is not empty \(users has rows\)/,
        ],
        [
          "unmigrated target",
          [],
          { STAGING_FROM_URL: from, STAGING_TO_URL: unmigrated.url, STAGING_PASSWORD },
          /the --to database is not migrated \(pending: 0001_core_schema\.sql, .*\); run deno task migrate against the target first$/,
        ],
        [
          "foreign source",
          [],
          { STAGING_FROM_URL: unmigrated.url, STAGING_TO_URL: target.url, STAGING_PASSWORD },
          /the --from database is not a Levelguard database/,
        ],
        [
          "no password",
          [],
          { STAGING_FROM_URL: from, STAGING_TO_URL: target.url },
          /set STAGING_PASSWORD .* or pass --keep-password-hashes/,
        ],
        [
          "unreachable",
          [],
          {
            STAGING_FROM_URL: from,
            STAGING_TO_URL: `postgres://lg:${secret}@127.0.0.1:${closedPort()}/levelguard`,
            STAGING_PASSWORD,
          },
          /the --to database is unreachable: /,
        ],
      ];
      assert(otherSpelling(from) !== from);
      for (const [what, args, env, message] of cases) {
        const out = await runScript("tasks/staging_export.ts", args, env);
        assertEquals(out.code, 1, `${what}: ${out.stdout}${out.stderr}`);
        assertEquals(out.stdout, "", what);
        const lines = out.stderr.trimEnd().split("\n");
        assertEquals(lines.length, 1, `${what}: ${out.stderr}`);
        assertMatch(lines[0], /^staging:export: /);
        assertMatch(lines[0], message);
        assert(!out.stderr.includes(secret), "no password echoed");
      }

      const bad = await runScript("tasks/staging_export.ts", ["--limit", "ten"], {
        STAGING_FROM_URL: from,
        STAGING_TO_URL: target.url,
        STAGING_PASSWORD,
      });
      assertEquals(bad.code, 2, bad.stderr);
      assertMatch(bad.stderr, /^staging:export: --limit: .*\nusage: deno task staging:export/);

      assertEquals(await counts(target.sql), EMPTY);
      assertEquals((await counts(nonEmpty.sql)).users, 1);
      const [{ tables }] = await unmigrated.sql`
        SELECT count(*)::int AS tables FROM information_schema.tables WHERE table_schema = 'public'`;
      assertEquals(tables, 0);
      await untilGone(source.db.sql, "%:staging-export");
      assertEquals(await databaseState(source.db.sql), sourceBefore);
    } finally {
      await Promise.all([unmigrated.close(), nonEmpty.close()]);
    }
  }));

Deno.test({
  name: "a target role that does not own the tables is refused before anything is written",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(20, async (source, target) => {
    const { role, password } = testRole();
    const admin = postgres(Deno.env.get("LG_TEST_ADMIN_URL")!, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      await target.sql.unsafe(`GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO ${role}`);
      const url = new URL(target.url);
      url.username = role;
      url.password = password;
      const refused = await assertRejects(
        () => exportStaging({ from: source.db.url, to: url.toString(), keepPasswordHashes: true }),
        ExportRefused,
      );
      assertMatch(
        refused.message,
        /^the --to role does not own specialization_progress, user_licenses, users, xp_events/,
      );
      assertEquals(await counts(target.sql), EMPTY);
    } finally {
      await target.sql.unsafe(`DROP OWNED BY ${role}`).catch(() => {});
      await admin.unsafe(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
      await admin.end();
    }
  }));

Deno.test({
  name:
    "a target with rows in any application table is refused, naming them; migrate's own rows are not data",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(30, async (source, target) => {
    // SEEDED_TABLES is exactly what a fresh migrate fills.
    const tables = await target.sql<{ name: string }[]>`
      SELECT quote_ident(table_name) AS name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`;
    assert(tables.length >= 14, `${tables.length} tables`);
    const filled: string[] = [];
    for (const { name } of tables) {
      const [{ any }] = await target.sql.unsafe(`SELECT EXISTS (SELECT 1 FROM ${name}) AS any`);
      if (any) filled.push(name);
    }
    assertEquals(filled, [...SEEDED_TABLES].sort());
    assertEquals(await nonEmptyTables(target.sql), []);

    const user =
      `INSERT INTO users (id, email, hashed_password, role) VALUES (900001, 'x@old.example', 'x', 'ADMIN')`;
    const leftovers: [string, string[], string[]][] = [
      ["integrity_checks", ["INSERT INTO integrity_checks (trigger, outcome) VALUES ('cli', 'success')"], []],
      ["audit_log", ["INSERT INTO audit_log (action) VALUES ('repair')"], []],
      ["request_stats", [
        `INSERT INTO request_stats (minute, instance, cohort, requests, errors, latency_buckets)
         VALUES (now(), 'old', 'other', 1, 0, '{1}')`,
      ], []],
      [
        "rate_limit_hits",
        ["INSERT INTO rate_limit_hits (key, hits, reset_at) VALUES ('ip:1', 1, now())"],
        [],
      ],
      ["admin_sessions", [
        user,
        `INSERT INTO admin_sessions (token_hash, user_id, csrf_token, expires_at)
         VALUES ('h', 900001, 'c', now() + interval '1 hour')`,
      ], ["users"]],
      ["idempotency_keys", [
        user,
        "INSERT INTO idempotency_keys (actor_id, key, request) VALUES (900001, 'k', '1|PLAYER|5')",
      ], ["users"]],
    ];
    const options = { from: source.db.url, to: target.url, keepPasswordHashes: true };
    for (const [table, inserts, alsoListed] of leftovers) {
      for (const statement of inserts) await target.sql.unsafe(statement);
      const refused = await assertRejects(() => exportStaging(options), ExportRefused);
      const listed = [table, ...alsoListed].sort();
      assertEquals(
        refused.message,
        `the --to database is not empty (${listed.join(", ")} ${listed.length > 1 ? "have" : "has"} rows); ` +
          "staging:export fills an empty, migrated database",
      );
      for (const t of [table, ...alsoListed]) await target.sql.unsafe(`DELETE FROM ${t}`);
    }
    assertEquals(await counts(target.sql), EMPTY);

    // Changed settings are configuration, not data: the copy goes ahead.
    await target.sql`UPDATE app_settings SET value = '5' WHERE key = 'dashboard_rollout_percent'`;
    const result = await exportStaging(options);
    assertEquals((await counts(target.sql)).users, result.students + result.staff);
  }));

Deno.test({
  name:
    "through PgBouncer in transaction pooling on both sides the copy works, and the same database is refused",
  ignore: !hasServer || !findPgBouncer(),
}, () =>
  withSourceAndTarget(300, async (source, target) => {
    const bouncer = await startPgBouncer(findPgBouncer()!, Deno.env.get("LG_TEST_ADMIN_URL")!);
    try {
      const from = bouncer.through(source.db.url);
      const to = bouncer.through(target.url);
      const same = await assertRejects(
        () => exportStaging({ from, to: source.db.url, keepPasswordHashes: true }),
        ExportRefused,
      );
      assertMatch(same.message, /same database/);

      const result = await exportStaging({ from, to, stagingPassword: STAGING_PASSWORD });
      const want = await activeRows(source.db.sql);
      assertEquals(await counts(target.sql), {
        users: want.users.length,
        specialization_progress: want.progress.length,
        user_licenses: want.licenses.length,
        xp_events: want.ledger.length,
      });
      assertEquals([result.students + result.staff, result.analyzed], [want.users.length, true]);
      const [{ wrong }] = await target.sql<{ wrong: number }[]>`
        SELECT count(*)::int AS wrong FROM users WHERE email <> 'user_' || id || '@staging.example.com'`;
      assertEquals(wrong, 0);
    } finally {
      await bouncer.stop();
    }
  }));

Deno.test("a pooler refusing a startup parameter is told in one line, with the way out", () => {
  const err = Object.assign(new Error("unsupported startup parameter: statement_timeout"), { code: "08P01" });
  const message = connectFailure("from", err);
  assertMatch(
    message,
    /^the --from database \(a pooler\?\) refused a connection setting: .*statement_timeout/,
  );
  assertMatch(message, /give a direct URL to the database instead$/);
  assert(!message.includes("\n"));
});

Deno.test({
  name: "where pg_control_system() is revoked, a lock handshake still tells the same database from another",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(30, async (source, target) => {
    const { role, password } = testRole();
    const admin = postgres(Deno.env.get("LG_TEST_ADMIN_URL")!, { max: 1, onnotice: () => {} });
    const as = (url: string) => {
      const u = new URL(url);
      u.username = role;
      u.password = password;
      return u.toString();
    };
    const pools: Sql[] = [];
    const open = (url: string) => {
      const sql = postgres(url, { max: 1, onnotice: () => {}, prepare: false });
      pools.push(sql);
      return sql;
    };
    try {
      await admin.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      for (const db of [source.db, target]) {
        await db.sql`REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC`;
      }
      await source.db.sql.unsafe(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
      const from = as(source.db.url);
      const denied = await assertRejects(
        () => open(from)`SELECT system_identifier FROM pg_control_system()`,
        postgres.PostgresError,
      );
      assertEquals(denied.code, "42501", "the restricted role cannot read it");

      assertEquals(await sameDatabase(open(from), open(otherSpelling(from))), true);
      assertEquals(await sameDatabase(open(from), open(as(target.url))), false);
      assertEquals(await sameDatabase(open(from), open(target.url)), false, "only one side restricted");

      const refused = await assertRejects(
        () => exportStaging({ from, to: otherSpelling(from), keepPasswordHashes: true }),
        ExportRefused,
      );
      assertMatch(refused.message, /^--from and --to are the same database/);
      const result = await exportStaging({ from, to: target.url, keepPasswordHashes: true });
      assertEquals((await counts(target.sql)).users, result.students + result.staff);
    } finally {
      await Promise.all(pools.map((p) => p.end({ timeout: 0 })));
      await source.db.sql.unsafe(`DROP OWNED BY ${role}`).catch(() => {});
      await target.sql.unsafe(`DROP OWNED BY ${role}`).catch(() => {});
      await admin.unsafe(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
      await admin.end();
    }
  }));

Deno.test("a --from or --to URL with a password is refused before anything is opened, saying why, never echoing it", async () => {
  const secret = "Sekrit-on-the-command-line";
  const withPassword = `postgres://lg:${secret}@127.0.0.1:${closedPort()}/levelguard`;
  const without = `postgres://lg@127.0.0.1:${closedPort()}/levelguard`;
  for (
    const [option, args] of [
      ["from", ["--from", withPassword, "--to", without]],
      ["to", ["--from", without, "--to", withPassword]],
    ] as const
  ) {
    const out = await runScript("tasks/staging_export.ts", [...args], { STAGING_PASSWORD });
    assertEquals(out.code, 2, out.stderr);
    const [first, second] = out.stderr.split("\n");
    assertMatch(
      first,
      new RegExp(
        `^staging:export: --${option}: carries a password, which would be in the shell history, the process list .*` +
          `set STAGING_${option.toUpperCase()}_URL instead, or leave it out of the URL and use PGPASSWORD or ~/\\.pgpass$`,
      ),
    );
    assertMatch(second, /^usage: deno task staging:export/);
    assert(!(out.stdout + out.stderr).includes(secret), "the password is not echoed");
  }
  // Neither given: where to put them.
  const none = await runScript("tasks/staging_export.ts", [], { STAGING_PASSWORD });
  assertEquals(none.code, 2, none.stderr);
  assertMatch(
    none.stderr,
    /^staging:export: no source: set STAGING_FROM_URL \(or DATABASE_URL\), or pass --from URL/,
  );
  // A malformed one, in the environment or the arguments: named, never echoed.
  const malformed = `postgres://lg:${secret}@127.0.0.1:99999/levelguard`;
  const env = await runScript("tasks/staging_export.ts", [], {
    STAGING_FROM_URL: malformed,
    STAGING_PASSWORD,
  });
  assertEquals(env.code, 1, env.stderr);
  assertMatch(
    env.stderr,
    /^staging:export: invalid configuration: STAGING_FROM_URL has a port that is not a number/,
  );
  const arg = await runScript("tasks/staging_export.ts", ["--to", "postgres://lg@db:99999/x"], {});
  assertEquals(arg.code, 2, arg.stderr);
  assertMatch(arg.stderr, /^staging:export: --to: has a port that is not a number from 1 to 65535\n/);
  assert(!(env.stdout + env.stderr + arg.stderr).includes(secret));
});

Deno.test({
  name: "--from and --to without a password work, the passwords coming from a password file (PGPASSFILE)",
  ignore: !hasServer,
}, () =>
  withSourceAndTarget(20, async (source, target) => {
    const file = await Deno.makeTempFile({ prefix: "levelguard-pgpass-" });
    try {
      // The test server's URL may carry a password (a server that asks for one): it goes to the file.
      const lines: string[] = [];
      const bare = (url: string) => {
        const u = new URL(url);
        const pass = decodeURIComponent(u.password);
        u.password = "";
        if (pass) lines.push([u.hostname, u.port || "5432", u.pathname.slice(1), u.username, pass].join(":"));
        return u.toString();
      };
      const args = ["--from", bare(source.db.url), "--to", bare(target.url), "--keep-password-hashes"];
      await Deno.writeTextFile(file, lines.join("\n") + "\n", { mode: 0o600 });
      await Deno.chmod(file, 0o600);
      const out = await runScript("tasks/staging_export.ts", args, { PGPASSFILE: file });
      assertEquals(out.code, 0, out.stderr);
      assertMatch(out.stdout, /^copied \d+ users .*password hashes kept\n$/);
    } finally {
      await Deno.remove(file);
    }
  }));

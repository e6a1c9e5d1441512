/** The one postgres.js `sql` of the app: a server pool or embedded PGlite. */
import postgres from "postgres";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { connectionProbe } from "./db_watch.ts";
import { DatabaseUnavailable } from "./errors.ts";
import { firstAnswer, NoPostgresAnswer } from "./handshake.ts";

/** The postgres.js client type used everywhere above this module. */
export type Sql = postgres.Sql;

/** Something that runs queries: the pool or an open transaction. */
export type Queryable = postgres.Sql | postgres.TransactionSql;

/** An open database and how to close it. */
export interface Database {
  sql: Sql;
  kind: "server" | "embedded";
  /**
   * With DB_PREPARE=0 (a pooler in transaction mode): a small client for the work that needs one
   * server session (LISTEN, the scan lock); on DATABASE_DIRECT_URL when set, else through the pooler
   * (then good for transaction-scoped locks only, and `direct` is false).
   */
  session?: { sql: Sql; direct: boolean };
  /** DATABASE_REPLICA_URL: a streaming replica for heavy reads (lib/replica.ts decides when). */
  replica?: Sql;
  /** Checks the database answers on a connection of its own (not the pool's); throws otherwise. */
  probe(): Promise<void>;
  /** Ends the clients, letting running queries finish for up to `timeoutS` (default 5). */
  close(timeoutS?: number): Promise<void>;
}

// int8 columns (XP totals, counts) are kept below 2^53, so numbers are exact.
const int8AsNumber = {
  to: 20,
  from: [20],
  serialize: (v: number | bigint) => String(v),
  parse: (v: string) => Number(v),
};

/**
 * This process's name in pg_stat_activity: `levelguard:` and a random id, so an
 * operator (and the connection metrics) can tell instances apart.
 */
export const APPLICATION_NAME = `levelguard:${crypto.randomUUID().slice(0, 8)}`;

/**
 * Client options shared by both modes. `pooled`: through PgBouncer in transaction pooling, where
 * prepared statements do not survive a transaction and an unknown startup parameter
 * (statement_timeout) is refused; the timeout is then the role's (see `checkPooledTimeout`).
 */
export function clientOptions(
  config: Pick<Config, "DB_CONNECT_TIMEOUT_S" | "DB_STATEMENT_TIMEOUT_MS">,
  max: number,
  { pooled = false }: { pooled?: boolean } = {},
) {
  return {
    max,
    prepare: !pooled,
    connect_timeout: config.DB_CONNECT_TIMEOUT_S,
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    // postgres.js waits up to 20 s between reconnects after repeated failures, so a pool
    // that lived through an outage kept refusing work long after the database was back.
    // The watch (db_watch.ts) keeps requests off a dead pool; reconnecting stays quick.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    types: { bigint: int8AsNumber },
    connection: pooled
      ? { application_name: APPLICATION_NAME }
      : { application_name: APPLICATION_NAME, statement_timeout: config.DB_STATEMENT_TIMEOUT_MS },
  } as const;
}

/**
 * Opens the configured database and checks it answers as PostgreSQL within DB_CONNECT_TIMEOUT_S
 * (and the session's server, with DB_PREPARE=0); throws one line (DatabaseUnavailable) otherwise.
 */
export async function openDatabase(config: Config): Promise<Database> {
  const { db, url } = config.DATABASE_URL
    ? { db: openServer(config.DATABASE_URL, config), url: config.DATABASE_URL }
    : await openEmbedded(config);
  try {
    await firstAnswer(db.sql, url, config.DB_CONNECT_TIMEOUT_S);
    const direct = config.DATABASE_DIRECT_URL;
    if (db.session && direct) await firstAnswer(db.session.sql, direct, config.DB_CONNECT_TIMEOUT_S);
  } catch (err) {
    await db.close(0).catch(() => {});
    if (err instanceof NoPostgresAnswer) {
      throw new DatabaseUnavailable(`database unreachable: ${err.message}`);
    }
    const code = (err as { code?: string }).code;
    // PgBouncer refuses the startup parameters a direct connection sends.
    if (/unsupported startup parameter/.test((err as Error).message ?? "")) {
      throw new DatabaseUnavailable(
        `the database (a pooler?) refused a connection setting: ${describe(err)}; ` +
          "through PgBouncer in transaction pooling set DB_PREPARE=0",
      );
    }
    const what = code === "28P01" || code === "28000"
      ? "the database refused our credentials"
      : code === "3D000"
      ? "the database does not exist"
      : "database unreachable";
    throw new DatabaseUnavailable(`${what}: ${describe(err)}`);
  }
  return db;
}

function openServer(url: string, config: Config): Database {
  const pooled = !config.DB_PREPARE;
  const sql = postgres(url, clientOptions(config, config.DB_POOL_MAX, { pooled }));
  const direct = pooled ? config.DATABASE_DIRECT_URL : undefined;
  // Two connections at most: LISTEN holds one, the scan lock another.
  const session = pooled
    ? {
      sql: postgres(direct ?? url, clientOptions(config, 2, { pooled: !direct })),
      direct: direct !== undefined,
    }
    : undefined;
  // The scan holds one connection there for its snapshot; pages and exports use the others.
  const replica = config.DATABASE_REPLICA_URL
    ? postgres(config.DATABASE_REPLICA_URL, clientOptions(config, 4, { pooled }))
    : undefined;
  return {
    sql,
    kind: "server",
    session,
    replica,
    probe: connectionProbe(url, config.DB_CONNECT_TIMEOUT_S),
    close: async (timeout = 5) => {
      await Promise.all([sql.end({ timeout }), session?.sql.end({ timeout }), replica?.end({ timeout })]);
    },
  };
}

/**
 * Through a pooler the statement timeout cannot be a startup parameter: it is the role's or the
 * database's setting. Returns a one-line warning when that differs from DB_STATEMENT_TIMEOUT_MS.
 */
export async function checkPooledTimeout(sql: Sql, wantedMs: number): Promise<string | null> {
  const [{ ms }] = await sql<{ ms: number }[]>`
    SELECT extract(epoch FROM current_setting('statement_timeout')::interval) * 1000 AS ms`;
  if (Number(ms) === wantedMs) return null;
  return `statement_timeout through the pooler is ${
    Number(ms)
  } ms, not DB_STATEMENT_TIMEOUT_MS=${wantedMs}: ` +
    `set it on the role (ALTER ROLE <role> SET statement_timeout = '${wantedMs}ms')`;
}

async function openEmbedded(config: Config): Promise<{ db: Database; url: string }> {
  // Imported lazily: the WASM build is only loaded when it is used.
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const dir = join(config.DATA_DIR, "pglite");
  await Deno.mkdir(dir, { recursive: true });
  const pg = await PGlite.create(dir);
  const server = new PGLiteSocketServer({ db: pg, host: "127.0.0.1", port: 0 });
  await server.start();
  // PGlite serves one connection at a time, so the pool has exactly one.
  const url = `postgres://postgres@${server.getServerConn()}/postgres`;
  const sql = postgres(url, { ...clientOptions(config, 1), ssl: false });
  const db: Database = {
    sql,
    kind: "embedded",
    // In this process: it is down only if the process is.
    probe: async () => void await sql`SELECT 1`,
    async close(timeout = 5) {
      await sql.end({ timeout });
      await server.stop();
      await pg.close();
    },
  };
  return { db, url };
}

/**
 * This process's server connections by state, from pg_stat_activity (the
 * asking connection counts as idle). Null when the pool cannot spare a
 * connection within `withinMs`: a saturated pool shows in the pending requests.
 */
export async function connectionCounts(
  sql: Sql,
  withinMs = 500,
): Promise<{ busy: number; idle: number } | null> {
  const query = sql<{ busy: number; idle: number }[]>`
    select count(*) filter (where state <> 'idle' and pid <> pg_backend_pid())::int as busy,
           count(*) filter (where state = 'idle' or pid = pg_backend_pid())::int as idle
      from pg_stat_activity
     where application_name = ${APPLICATION_NAME}`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), withinMs));
  try {
    const rows = await Promise.race([query, late]);
    return rows ? rows[0] : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** A short one-line description of a database error. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

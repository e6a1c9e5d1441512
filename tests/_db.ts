/** Isolated test databases: a copy of the migrated template per call (or PGlite as a fallback). */
import postgres from "postgres";
import { clientOptions, type Sql } from "../lib/db.ts";
import { migrate } from "../lib/migrate.ts";

/** A database of one's own for a test, dropped by `close`. */
export interface TestDatabase {
  sql: Sql;
  url: string;
  /** True on PGlite: one connection, no real concurrency. */
  embedded: boolean;
  /** Opens another pool on the same database (e.g. for a second app instance). */
  connect(max?: number): Sql;
  close(): Promise<void>;
}

const TIMEOUTS = { DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 60_000 };

/** True when tests run on a real PostgreSQL server. */
export const hasServer = Boolean(Deno.env.get("LG_TEST_ADMIN_URL"));

/**
 * The port of a PgBouncer in transaction pooling when this run goes through one (tests/run.ts
 * runs some files a second time that way): test databases are then reached through it.
 */
export const pooledPort = Deno.env.get("LG_TEST_POOLED_PORT");

/** Options for a test database. */
export interface TestDatabaseOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Start without any migration applied. */
  empty?: boolean;
}

/** Creates a fresh database, migrated unless `empty`. */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const max = options.max ?? 10;
  const adminUrl = Deno.env.get("LG_TEST_ADMIN_URL");
  const template = Deno.env.get("LG_TEST_TEMPLATE");
  if (adminUrl && template) return await fromTemplate(adminUrl, options.empty ? "template0" : template, max);
  if (Deno.env.get("LG_TEST_PGLITE")) return await embedded(options.empty ?? false);
  throw new Error("run the tests through `deno task test` (it prepares the database)");
}

async function fromTemplate(adminUrl: string, template: string, max: number): Promise<TestDatabase> {
  const name = `lg_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  // Copies from one template can collide; a short retry settles it.
  for (let attempt = 0;; attempt++) {
    try {
      await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template}`);
      break;
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  const u = new URL(adminUrl);
  u.pathname = "/" + name;
  if (pooledPort) {
    u.hostname = "127.0.0.1";
    u.port = pooledPort;
  }
  const url = u.toString();
  const pools: Sql[] = [];
  const connect = (m = max) => {
    const sql = postgres(url, clientOptions(TIMEOUTS, m, { pooled: Boolean(pooledPort) }));
    pools.push(sql);
    return sql;
  };
  const sql = connect(max);
  return {
    sql,
    url,
    embedded: false,
    connect,
    async close() {
      await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

async function embedded(empty: boolean): Promise<TestDatabase> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const pg = await PGlite.create();
  const server = new PGLiteSocketServer({ db: pg, host: "127.0.0.1", port: 0 });
  await server.start();
  const url = `postgres://postgres@${server.getServerConn()}/postgres`;
  const sql = postgres(url, { ...clientOptions(TIMEOUTS, 1), ssl: false });
  if (!empty) await migrate(sql);
  return {
    sql,
    url,
    embedded: true,
    connect: () => sql,
    async close() {
      await sql.end({ timeout: 5 });
      await server.stop();
      await pg.close();
    },
  };
}

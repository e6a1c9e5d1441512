/**
 * The one test fixture: a database of its own (copied from the migrated
 * template), temp LOG_DIR and DATA_DIR, and the app wired exactly as main.ts
 * wires it. Rate limiting, request logs and the schedule are off unless a
 * test's env turns them on.
 */
import type { Hono } from "hono";
import { type Config, loadConfig } from "../lib/config.ts";
import type { Sql } from "../lib/db.ts";
import { connectionProbe } from "../lib/db_watch.ts";
import type { Role } from "../lib/model.ts";
import { randomSecret } from "../lib/secret_strength.ts";
import { buildServices } from "../lib/services.ts";
import { issueToken } from "../lib/tokens.ts";
import { type AppDeps, appDeps, createApp } from "../routes/app.ts";
import type { AppEnv } from "../routes/env.ts";
import { createTestDatabase, pooledPort, type TestDatabase } from "./_db.ts";
import { addStudents, ADMIN_ID, INSTRUCTOR_ID } from "./_students.ts";

/** The JWT key tests sign with (random per run, as a JWT_SECRET must be). */
export const TEST_TOKEN_KEY = new TextEncoder().encode(randomSecret());

/** What a test gets. */
export interface TestApp {
  db: TestDatabase;
  app: Hono<AppEnv>;
  deps: AppDeps;
  config: Config;
  /** Temp directories, removed afterwards. */
  logDir: string;
  dataDir: string;
  /** Another app on the same database and directories (a second instance, other settings). */
  another(
    options?: { env?: Record<string, string>; sql?: Sql; url?: string },
  ): Promise<{ app: Hono<AppEnv>; deps: AppDeps }>;
}

/** The app a test calls (`app.request`). */
export type App = TestApp["app"];

/** Options of `withTestApp`. */
export interface TestAppOptions {
  /** Configuration variables (on top of the test defaults). */
  env?: Record<string, string>;
  /** Pool size (default 4). */
  pool?: number;
  /** Start from an empty, unmigrated database. */
  empty?: boolean;
  /** Create students 1..n (no progress), ADMIN_ID and INSTRUCTOR_ID first (tests/_students.ts). */
  students?: number;
}

const DEFAULTS = {
  LOG_REQUESTS: "0",
  RATE_LIMIT_PER_MINUTE: "0",
  SCAN_ENABLED: "0",
  // Through PgBouncer (tests/run.ts's second pass) the app runs as it must behind a pooler.
  ...(pooledPort ? { DB_PREPARE: "0" } : {}),
};

/** Every app built by the current test, stopped at its end. */
const built: AppDeps[] = [];

async function build(config: Config, sql: Sql, url: string, sessionSql?: Sql) {
  // Behind a pooler the scan lock lives in a transaction on a client of its own (lib/db.ts, session).
  const session = sessionSql ? { sql: sessionSql, direct: false } : undefined;
  const services = await buildServices(config, { sql, probe: connectionProbe(url, 2), session });
  // As main.ts does after migrating (an unmigrated test database has no setting yet: 100 then).
  await services.rollout.percent().catch(() => {});
  // An app in a test has no LISTEN of its own: account changes reach it by polling, as behind a pooler.
  await services.accounts.start(null);
  const deps = await appDeps(services, { tokenKey: TEST_TOKEN_KEY });
  built.push(deps);
  return { app: createApp(deps), deps };
}

/** Runs `fn` with a fresh database and app; everything is closed and removed afterwards. */
export async function withTestApp(
  optionsOrFn: TestAppOptions | ((t: TestApp) => Promise<void>),
  maybeFn?: (t: TestApp) => Promise<void>,
): Promise<void> {
  const options = typeof optionsOrFn === "function" ? {} : optionsOrFn;
  const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn!;
  const db = await createTestDatabase({ max: options.pool ?? 4, empty: options.empty });
  const logDir = await Deno.makeTempDir({ prefix: "levelguard-test-logs-" });
  const dataDir = await Deno.makeTempDir({ prefix: "levelguard-test-data-" });
  const configFor = (env: Record<string, string> = {}) =>
    loadConfig({ ...DEFAULTS, LOG_DIR: logDir, DATA_DIR: dataDir, ...options.env, ...env });
  try {
    const config = configFor();
    const session = () => pooledPort ? db.connect(2) : undefined;
    const { app, deps } = await build(config, db.sql, db.url, session());
    if (options.students !== undefined) await addStudents(db, options.students);
    await fn({
      db,
      app,
      deps,
      config,
      logDir,
      dataDir,
      another: ({ env, sql, url } = {}) =>
        build(configFor(env), sql ?? db.sql, url ?? db.url, url === undefined ? session() : undefined),
    });
  } finally {
    for (const deps of built.splice(0)) await deps.accounts.stop();
    await db.close();
    await Deno.remove(logDir, { recursive: true }).catch(() => {});
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/**
 * A bearer header for a user id and role, signed with the test key, at the
 * account's `epoch` (0: never changed since it was created). The guard checks
 * it against the account: the user must exist with that role.
 */
export async function bearer(
  userId: number,
  role: Role,
  ttl = 600,
  epoch = 0,
): Promise<Record<string, string>> {
  const { token } = await issueToken(TEST_TOKEN_KEY, { userId, role, epoch }, ttl);
  return { Authorization: `Bearer ${token}` };
}

/**
 * A bearer header for an active admin of the test database: the first there
 * is (the seeded one), or a new one (id 201) when there is none. Call it after
 * seeding: seed() fills an empty database only.
 */
export async function adminBearer(sql: Sql): Promise<Record<string, string>> {
  const [found] = await sql<{ id: number; auth_epoch: number }[]>`
    SELECT id, auth_epoch FROM users WHERE role = 'ADMIN' AND is_active ORDER BY id LIMIT 1`;
  const [admin] = found ? [found] : await sql<{ id: number; auth_epoch: number }[]>`
    INSERT INTO users (id, email, hashed_password, role)
    VALUES (201, 'admin201@test.example', 'unused', 'ADMIN') RETURNING id, auth_epoch`;
  return await bearer(admin.id, "ADMIN", 600, admin.auth_epoch);
}

/** A loopback port nothing listens on (free a moment ago). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Runs `fn` with console.error captured; returns its result and the lines. */
export async function capturingStderr<T>(fn: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    return { result: await fn(), lines };
  } finally {
    console.error = original;
  }
}

/** The update endpoint's path. */
export const PROGRESS_UPDATE_PATH = "/api/v1/specializations/progress/update";

/** POSTs `body` as JSON to the update endpoint as `actor` (an instructor by default; ADMIN_ID as admin). */
export async function award(
  app: App,
  body: unknown,
  headers: Record<string, string> = {},
  actor = INSTRUCTOR_ID,
): Promise<Response> {
  return await app.request(PROGRESS_UPDATE_PATH, {
    method: "POST",
    headers: {
      ...await bearer(actor, actor === ADMIN_ID ? "ADMIN" : "INSTRUCTOR"),
      "Content-Type": "application/json",
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/** Polls `test` every `everyMs` until it holds; throws naming `what` after `withinMs`. */
export async function until(
  what: string,
  test: () => Promise<boolean> | boolean,
  withinMs = 10_000,
  everyMs = 25,
): Promise<void> {
  const deadline = performance.now() + withinMs;
  while (performance.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${withinMs} ms waiting until ${what}`);
}

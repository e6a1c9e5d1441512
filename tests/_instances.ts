/**
 * Several real Levelguard processes (`main.ts`) on one test database, for
 * tests/multi_instance_test.ts: a shared JWT_SECRET, a client on the
 * PostgreSQL server itself (never through PgBouncer) for the locks a test
 * holds, readers for the dashboard's event stream and a webhook receiver.
 * In the pass through PgBouncer (tests/run.ts) every instance gets
 * DATABASE_DIRECT_URL unless a test asks for one without it.
 */
import postgres from "postgres";
import { inRollout } from "../lib/canary/bucket.ts";
import type { Sql } from "../lib/db.ts";
import { seed } from "../lib/seed.ts";
import { createTestDatabase, pooledPort, type TestDatabase } from "./_db.ts";
import { loadToken } from "./_load.ts";
import { serverEnv, type ServerProcess, startServer } from "./_process.ts";

// Shared helpers this file's tests have always imported from here.
export { until } from "./_fixture.ts";
export { blockScans, scanLockHeld } from "./_integrity.ts";

/** One started instance: the process, and API calls to it as the seeded admin. */
export interface Instance extends ServerProcess {
  /** Whether it was given DATABASE_DIRECT_URL (only meaningful through PgBouncer). */
  direct: boolean;
  /** `fetch` of a path on this instance, with the admin's bearer token unless `authorization` is given. */
  api(path: string, init?: RequestInit & { authorization?: string }): Promise<Response>;
  /** POST /api/v1/health/check-now; resolves with the status and the JSON body. */
  checkNow(): Promise<{ status: number; body: Record<string, unknown> }>;
  /** The JSON log lines it printed (other lines skipped). */
  logs(): Record<string, unknown>[];
}

/** Several instances on one database, plus the test's own connections. */
export interface Deployment {
  db: TestDatabase;
  /** The test database on the PostgreSQL server itself (in the pooled pass: not through PgBouncer). */
  directUrl: string;
  /** A pool on `directUrl`. */
  direct: Sql;
  /** The seeded admin (after `seed`). */
  adminId: number;
  /** `Bearer …` for the seeded admin. */
  authorization: string;
  /** Seeds `students` consistent students and an admin (ids 1..N, then the admin). */
  seed(students: number): Promise<void>;
  /** Starts `n` instances at the same moment; resolves once every one answers /readyz. */
  start(
    n: number,
    env?: Record<string, string>,
    options?: { direct?: boolean | boolean[] },
  ): Promise<Instance[]>;
}

/** The test database's URL on the server itself: LG_TEST_ADMIN_URL's host and port, the database's name. */
export function directUrlOf(db: TestDatabase): string {
  const admin = Deno.env.get("LG_TEST_ADMIN_URL");
  if (!admin) throw new Error("no LG_TEST_ADMIN_URL: run through tests/run.ts with a PostgreSQL server");
  const u = new URL(admin);
  u.pathname = new URL(db.url).pathname;
  return u.toString();
}

/**
 * Runs `fn` with a fresh database (`empty`: unmigrated) and a way to start
 * instances on it; every instance is stopped (SIGTERM, exit awaited) and
 * everything closed afterwards, whatever happened.
 */
export async function withDeployment(
  options: { empty?: boolean },
  fn: (d: Deployment) => Promise<void>,
): Promise<void> {
  const db = await createTestDatabase({ max: 4, empty: options.empty });
  const directUrl = directUrlOf(db);
  const direct = postgres(directUrl, { max: 3, onnotice: () => {} });
  const dir = await Deno.makeTempDir({ prefix: "levelguard-instances-" });
  const started: Instance[] = [];
  const deployment: Deployment = {
    db,
    directUrl,
    direct,
    adminId: 0,
    authorization: "",
    async seed(students) {
      const seeded = await seed(db.sql, {
        students,
        desyncRate: 0,
        adminEmail: "admin@instances.test",
        adminPassword: "admin-password",
        studentPassword: "student-password",
      });
      deployment.adminId = seeded.adminId;
      deployment.authorization = await loadToken(seeded.adminId);
    },
    async start(n, env = {}, { direct = true } = {}) {
      // allSettled: one that fails to start must not leave the others running unseen.
      const results = await Promise.allSettled(Array.from({ length: n }, async (_, i) => {
        const withDirect = Array.isArray(direct) ? direct[i] ?? true : direct;
        const server = await startServer(serverEnv({
          DB_POOL_MAX: "4",
          SHUTDOWN_GRACE_S: "3",
          DATABASE_URL: db.url,
          // Through PgBouncer, LISTEN (and a session for the scan lock) need the server itself.
          ...(pooledPort && withDirect ? { DATABASE_DIRECT_URL: directUrl } : {}),
          DATA_DIR: dir,
          LOG_DIR: dir,
          ...env,
        }));
        const instance = asInstance(
          server,
          Boolean(pooledPort) && withDirect,
          () => deployment.authorization,
        );
        started.push(instance);
        return instance;
      }));
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      return results.map((r) => (r as PromiseFulfilledResult<Instance>).value);
    },
  };
  try {
    await fn(deployment);
  } finally {
    await Promise.all(started.map((s) => s.stop("SIGTERM")));
    await direct.end({ timeout: 1 });
    await db.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function asInstance(server: ServerProcess, direct: boolean, authorization: () => string): Instance {
  const api = (path: string, init: RequestInit & { authorization?: string } = {}) => {
    const { authorization: given, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (!headers.has("Authorization")) headers.set("Authorization", given ?? authorization());
    return fetch(`${server.url}${path}`, { ...rest, headers });
  };
  return {
    ...server,
    direct,
    api,
    async checkNow() {
      const res = await api("/api/v1/health/check-now", { method: "POST" });
      return { status: res.status, body: await res.json() };
    },
    logs() {
      return server.lines.flatMap((line) => {
        try {
          const parsed = JSON.parse(line);
          return parsed && typeof parsed === "object" ? [parsed] : [];
        } catch {
          return [];
        }
      });
    },
  };
}

/** Integrity check rows by trigger and outcome, e.g. `{ "startup/success": 1, "startup/skipped": 2 }`. */
export async function checkCounts(sql: Sql): Promise<Record<string, number>> {
  const rows = await sql<{ key: string; n: number }[]>`
    SELECT trigger || '/' || outcome AS key, count(*)::int AS n FROM integrity_checks GROUP BY 1 ORDER BY 1`;
  return Object.fromEntries(rows.map((r) => [r.key, r.n]));
}

/** Creates an active admin whose rollout bucket is inside (or outside) `percent`; returns its id. */
export async function adminInRollout(sql: Sql, inside: boolean, percent: number, from = 200_000) {
  let id = from;
  while (inRollout(id, percent) !== inside) id++;
  await sql`INSERT INTO users (id, email, hashed_password, role)
    VALUES (${id}, ${`admin${id}@instances.test`}, 'unused', 'ADMIN')`;
  return id;
}

/** One server-sent event. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/** An open `text/event-stream` response, read one event at a time. */
export class EventStream {
  #reader: ReadableStreamDefaultReader<string>;
  #pending: Promise<ReadableStreamReadResult<string>> | null = null;
  #buffer = "";
  /** Every event read so far, in order. */
  readonly seen: ServerSentEvent[] = [];

  private constructor(readonly response: Response, private readonly abort: AbortController) {
    this.#reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** Opens the stream at `url` with `headers`; throws unless it answers 200 with an event stream. */
  static async open(url: string, headers: HeadersInit): Promise<EventStream> {
    const abort = new AbortController();
    const res = await fetch(url, { headers, signal: abort.signal });
    if (res.status !== 200 || !res.headers.get("content-type")?.startsWith("text/event-stream")) {
      await res.body?.cancel();
      throw new Error(
        `${url} answered ${res.status} ${res.headers.get("content-type")}, not an event stream`,
      );
    }
    return new EventStream(res, abort);
  }

  /** The next event (comments such as keep-alives skipped); throws after `withinMs`. */
  async next(withinMs: number): Promise<ServerSentEvent> {
    const deadline = performance.now() + withinMs;
    for (;;) {
      const end = this.#buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        const event = parseEvent(block);
        if (event) {
          this.seen.push(event);
          return event;
        }
        continue;
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no event within ${withinMs} ms`);
      this.#pending ??= this.#reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const result = await Promise.race([
        this.#pending,
        new Promise<null>((r) => timer = setTimeout(() => r(null), left)),
      ]);
      clearTimeout(timer);
      if (result === null) continue;
      this.#pending = null;
      if (result.done) throw new Error("the event stream ended");
      this.#buffer += result.value;
    }
  }

  /** Reads events until one satisfies `test`; throws (listing what came) after `withinMs`. */
  async until(test: (e: ServerSentEvent) => boolean, withinMs: number): Promise<ServerSentEvent> {
    const deadline = performance.now() + withinMs;
    for (;;) {
      const left = deadline - performance.now();
      let event: ServerSentEvent;
      try {
        event = await this.next(Math.max(0, left));
      } catch (err) {
        throw new Error(`${(err as Error).message}; events so far: ${JSON.stringify(this.seen)}`);
      }
      if (test(event)) return event;
    }
  }

  /** Closes the stream. */
  async close(): Promise<void> {
    this.abort.abort();
    await this.#pending?.catch(() => {});
    await this.#reader.cancel().catch(() => {});
  }
}

function parseEvent(block: string): ServerSentEvent | null {
  const fields: Record<string, string> = {};
  for (const line of block.split("\n")) {
    if (line.startsWith(":") || !line.includes(":")) continue;
    const at = line.indexOf(":");
    const value = line.slice(at + 1).replace(/^ /, "");
    const name = line.slice(0, at);
    fields[name] = name === "data" && fields.data !== undefined ? `${fields.data}\n${value}` : value;
  }
  if (fields.event === undefined && fields.data === undefined) return null;
  return { event: fields.event ?? "message", data: fields.data ?? "", id: fields.id };
}

/** A local webhook receiver keeping every JSON body POSTed to it. */
export function webhookReceiver() {
  const bodies: { event: string; [field: string]: unknown }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    bodies.push(await req.json());
    return new Response(null, { status: 204 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks/levelguard`,
    bodies,
    /** The bodies of one event type. */
    of: (event: string) => bodies.filter((b) => b.event === event),
    close: () => server.shutdown(),
  };
}

/** Log lines: the fields log pipelines filter on, on real request and error lines; the Promtail config. */
import postgres from "postgres";
import { parse } from "yaml";
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { inRequestScope, log } from "../lib/log.ts";
import { bearer, capturingStderr, closedPort, withTestApp } from "./_fixture.ts";
import { ADMIN_ID } from "./_students.ts";

type Line = Record<string, unknown>;

/** Runs `fn` with stdout and stderr lines captured, as parsed JSON (a line that is not JSON fails). Not quiet here. */
async function capturingLines(fn: () => Promise<void>): Promise<Line[]> {
  const out: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => out.push(args.map(String).join(" "));
  try {
    const { lines } = await capturingStderr(fn);
    return [...out, ...lines].map((l) => JSON.parse(l));
  } finally {
    console.log = original;
  }
}

/** The fields every request-scoped line has, with their types. */
function assertRequestFields(
  line: Line,
  want: { route: string; status: number; requestId: string; userId?: number },
) {
  assertMatch(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert(["info", "warn", "error"].includes(line.level as string), `level ${line.level}`);
  assertEquals(typeof line.msg, "string");
  assertEquals(line.route, want.route);
  assertEquals(line.status, want.status);
  assertEquals(line.request_id, want.requestId);
  assertEquals(line.user_id, want.userId, "user_id");
  assert(typeof line.duration_ms === "number" && line.duration_ms >= 0, `duration_ms ${line.duration_ms}`);
}

Deno.test("a real request line has level, msg, route, status, duration_ms, request_id and user_id", () =>
  withTestApp({ env: { LOG_REQUESTS: "1" }, students: 3 }, async ({ app }) => {
    let res: Response | undefined;
    const lines = await capturingLines(async () => {
      res = await app.request("/api/v1/health/status", { headers: await bearer(ADMIN_ID, "ADMIN") });
      await res.body?.cancel();
    });
    assertEquals(res!.status, 200);
    const request = lines.filter((l) => l.msg === "request");
    assertEquals(request.length, 1);
    assertEquals(request[0].level, "info");
    assertEquals(request[0].method, "GET");
    assertEquals(request[0].path, "/api/v1/health/status");
    assertRequestFields(request[0], {
      route: "/api/v1/health/status",
      status: 200,
      requestId: res!.headers.get("x-request-id")!,
      userId: ADMIN_ID,
    });
  }));

Deno.test("an unhandled error's line carries the same request fields as its request line", () =>
  withTestApp({ env: { LOG_REQUESTS: "1" }, students: 3 }, async ({ app, db }) => {
    // A query that fails in a way no mapping knows (not an outage): a 500.
    await db.sql`ALTER VIEW latest_full_check RENAME TO latest_full_check_away`;
    let res: Response | undefined;
    const lines = await capturingLines(async () => {
      res = await app.request("/api/v1/health/violations", { headers: await bearer(ADMIN_ID, "ADMIN") });
      await res.body?.cancel();
    });
    assertEquals(res!.status, 500);
    const requestId = res!.headers.get("x-request-id")!;
    const error = lines.find((l) => l.msg === "unhandled error")!;
    assert(error, "an unhandled error line");
    assertEquals(error.level, "error");
    assertRequestFields(error, {
      route: "/api/v1/health/violations",
      status: 500,
      requestId,
      userId: ADMIN_ID,
    });
    assertMatch(String(error.error), /latest_full_check/);
    assert(typeof error.stack === "string");
    const request = lines.find((l) => l.msg === "request")!;
    assertEquals(request.level, "error", "a 5xx request line is an error");
    assertRequestFields(request, {
      route: "/api/v1/health/violations",
      status: 500,
      requestId,
      userId: ADMIN_ID,
    });
  }));

Deno.test("a refusal because the database is down is logged with the request's fields", () =>
  withTestApp(async ({ another }) => {
    const url = `postgres://nobody@127.0.0.1:${closedPort()}/none`;
    const sql = postgres(url, { max: 1, connect_timeout: 1 });
    try {
      const { app } = await another({ sql, url });
      let res: Response | undefined;
      const lines = await capturingLines(async () => {
        res = await app.request("/api/v1/health/status", { headers: await bearer(ADMIN_ID, "ADMIN") });
        await res.body?.cancel();
      });
      assertEquals(res!.status, 503);
      const refused = lines.find((l) => l.msg === "request refused: unavailable")!;
      assert(refused, "a refusal line");
      assertEquals(refused.level, "warn");
      assertRequestFields(refused, {
        route: "/api/v1/health/status",
        status: 503,
        requestId: res!.headers.get("x-request-id")!,
        userId: ADMIN_ID,
      });
    } finally {
      await sql.end({ timeout: 1 });
    }
  }));

Deno.test("lines written inside a request scope carry its fields, also after an await; its own fields win", async () => {
  let user: number | undefined;
  const lines = await capturingLines(() =>
    inRequestScope(() => ({ request_id: "r-1", route: "/x/:id", user_id: user }), async () => {
      log("info", "before the user is known");
      user = 7;
      await new Promise((r) => setTimeout(r, 5));
      log("warn", "deeper", { route: "overridden" });
    })
  );
  assertEquals(lines.map((l) => [l.msg, l.request_id, l.route, l.user_id]), [
    ["before the user is known", "r-1", "/x/:id", undefined],
    ["deeper", "r-1", "overridden", 7],
  ]);
});

Deno.test("ops/logging/promtail.yml is valid YAML whose pipeline reads the fields a real line has", async () => {
  const config = parse(await Deno.readTextFile(new URL("../ops/logging/promtail.yml", import.meta.url)));
  const jobs = config.scrape_configs as { job_name: string; pipeline_stages: Record<string, unknown>[] }[];
  assertEquals(jobs.map((j) => j.job_name), ["levelguard-journal", "levelguard-file"]);
  for (const job of jobs) {
    const stages = job.pipeline_stages;
    const json = stages.find((s) => "json" in s)!.json as { expressions: Record<string, string> };
    assertEquals(
      Object.keys(json.expressions).sort(),
      ["duration_ms", "level", "msg", "request_id", "route", "status", "time", "user_id"],
    );
    // Low cardinality: only level and the status class become labels.
    const labels = stages.find((s) => "labels" in s)!.labels as Record<string, unknown>;
    assertEquals(Object.keys(labels).sort(), ["level", "status_class"]);
    // The status regex, in JavaScript's syntax, maps a real status to its class.
    const regex = stages.find((s) => "regex" in s)!.regex as { expression: string };
    const re = new RegExp(regex.expression.replace("(?P<", "(?<"));
    assertEquals(re.exec("503")?.groups?.status_digit, "5");
    assertEquals(re.exec("5030"), null);
  }
  assertEquals(config.clients[0].url, "http://127.0.0.1:3100/loki/api/v1/push");
});

/**
 * Log lines: the fields log pipelines filter on, on real request and error lines; the Grafana Alloy
 * configuration that ships them (ops/logging/config.alloy), read and its pipeline replayed on real
 * lines (tests/support/alloy.ts), since Alloy itself cannot run here.
 */
import postgres from "postgres";
import { assert, assertEquals, assertMatch, assertThrows } from "./_assert.ts";
import { inRequestScope, log } from "../lib/log.ts";
import { bearer, capturingStderr, closedPort, withTestApp } from "./_fixture.ts";
import { ADMIN_ID } from "./_students.ts";
import { AlloyRef, findBlock, parseAlloy, processLine, references } from "./support/alloy.ts";

type Line = Record<string, unknown>;

const ALLOY_CONFIG = new URL("../ops/logging/config.alloy", import.meta.url);
const UNIT = new URL("../ops/systemd/levelguard.service", import.meta.url);

/** Runs `fn` with stdout and stderr lines captured, as written. Not quiet here. */
async function capturingRawLines(fn: () => Promise<void>): Promise<string[]> {
  const out: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => out.push(args.map(String).join(" "));
  try {
    const { lines } = await capturingStderr(fn);
    return [...out, ...lines];
  } finally {
    console.log = original;
  }
}

/** Runs `fn` with stdout and stderr lines captured, as parsed JSON (a line that is not JSON fails). Not quiet here. */
async function capturingLines(fn: () => Promise<void>): Promise<Line[]> {
  return (await capturingRawLines(fn)).map((l) => JSON.parse(l));
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

Deno.test("ops/logging/config.alloy reads as Alloy; its components are wired: the unit's journal, the log file, one pipeline, Loki", async () => {
  const blocks = parseAlloy(await Deno.readTextFile(ALLOY_CONFIG));
  assertEquals(blocks.map((b) => `${b.name} "${b.label}"`), [
    'loki.source.journal "levelguard"',
    'loki.relabel "journal"',
    'local.file_match "levelguard"',
    'loki.source.file "levelguard"',
    'loki.process "levelguard"',
    'loki.write "local"',
  ]);
  // Every reference names an export of a component of this file.
  const EXPORTS: Record<string, string> = {
    "loki.process": "receiver",
    "loki.write": "receiver",
    "loki.relabel": "rules",
    "local.file_match": "targets",
  };
  const exported = new Set(blocks.map((b) => `${b.name}.${b.label}.${EXPORTS[b.name]}`));
  for (const block of blocks) {
    for (const ref of references(block)) assert(exported.has(ref), `${block.name}: ${ref} is no export here`);
  }
  // Both sources feed the one pipeline, labelled job="levelguard"; it feeds Loki.
  const unit = await Deno.readTextFile(UNIT);
  const journal = findBlock(blocks, "loki.source.journal", "levelguard")!;
  assertEquals(journal.attributes.matches, "_SYSTEMD_UNIT=levelguard.service");
  assertEquals(journal.attributes.labels, { job: "levelguard" });
  assertEquals(journal.attributes.format_as_json, false, "the line is the JSON Levelguard wrote");
  assertEquals(journal.attributes.forward_to, [new AlloyRef("loki.process.levelguard.receiver")]);
  const logDir = /^Environment=LOG_DIR=(\S+)$/m.exec(unit)![1];
  const files = findBlock(blocks, "local.file_match", "levelguard")!;
  assertEquals(files.attributes.path_targets, [{ __path__: `${logDir}/*.log`, job: "levelguard" }]);
  const fileSource = findBlock(blocks, "loki.source.file", "levelguard")!;
  assertEquals(fileSource.attributes.forward_to, [new AlloyRef("loki.process.levelguard.receiver")]);
  const process = findBlock(blocks, "loki.process", "levelguard")!;
  assertEquals(process.attributes.forward_to, [new AlloyRef("loki.write.local.receiver")]);
  const endpoint = findBlock(findBlock(blocks, "loki.write", "local")!.blocks, "endpoint")!;
  assertEquals(endpoint.attributes.url, "http://127.0.0.1:3100/loki/api/v1/push");
  // The header says what is verified here and what is not.
  assertMatch(await Deno.readTextFile(ALLOY_CONFIG), /Alloy cannot run on our machines[\s\S]*not verified/);
});

Deno.test("the Alloy pipeline, replayed on real log lines, reads fields they have and labels only level and status class", () =>
  withTestApp({ env: { LOG_REQUESTS: "1" }, students: 3 }, async ({ app, db }) => {
    const process = findBlock(
      parseAlloy(await Deno.readTextFile(ALLOY_CONFIG)),
      "loki.process",
      "levelguard",
    )!;
    let ok: Response | undefined;
    let failed: Response | undefined;
    const lines = await capturingRawLines(async () => {
      ok = await app.request("/api/v1/health/status", { headers: await bearer(ADMIN_ID, "ADMIN") });
      await ok.body?.cancel();
      // A query that fails in a way no mapping knows: a 500, with its error line.
      await db.sql`ALTER VIEW latest_full_check RENAME TO latest_full_check_away`;
      failed = await app.request("/api/v1/health/violations", { headers: await bearer(ADMIN_ID, "ADMIN") });
      await failed.body?.cancel();
      // A line of background work: no request, no status.
      log("warn", "status notification not delivered", {
        target: "https://chat.example",
        reason: "HTTP 404",
      });
    });
    assertEquals([ok!.status, failed!.status], [200, 500]);
    const find = (pred: (l: Line) => boolean) => lines.find((l) => pred(JSON.parse(l)))!;
    const request = find((l) => l.msg === "request" && l.status === 200);
    const failedRequest = find((l) => l.msg === "request" && l.status === 500);
    const unhandled = find((l) => l.msg === "unhandled error");
    const background = find((l) => l.msg === "status notification not delivered");

    // Every field the json stage reads is in a real request line.
    const json = findBlock(process.blocks, "stage.json")!;
    const read = Object.entries(json.attributes.expressions as Record<string, string>);
    assertEquals(read.map(([name]) => name).sort(), [
      "duration_ms",
      "level",
      "msg",
      "request_id",
      "route",
      "status",
      "time",
      "user_id",
    ]);
    const fields = JSON.parse(request);
    for (const [name, path] of read) {
      assert((path || name) in fields, `${name}: ${path} is not in ${request}`);
    }

    const source = { job: "levelguard" };
    const ran = processLine(process, request, source);
    assertEquals(ran.labels, { job: "levelguard", level: "info", status_class: "2xx" });
    assertEquals(ran.timestamp.toISOString(), fields.time, "the line's own time, not the time it was read");
    assertEquals(ran.extracted.request_id, ok!.headers.get("x-request-id"));
    for (const line of [failedRequest, unhandled]) {
      assertEquals(processLine(process, line, source).labels, {
        ...source,
        level: "error",
        status_class: "5xx",
      });
    }
    assertEquals(processLine(process, background, source).labels, { ...source, level: "warn" });
    // A start-up failure is plain text: left as it is, unlabelled, with the time it was read.
    const readAt = new Date("2026-11-29T12:00:00Z");
    const plain = processLine(
      process,
      "Levelguard could not start: DATABASE_URL is not a URL",
      source,
      readAt,
    );
    assertEquals([plain.labels, plain.timestamp], [source, readAt]);
  }));

Deno.test("the Alloy reader reads values as Alloy does and refuses what Alloy refuses", () => {
  const [block] = parseAlloy(
    '// a comment\nx.y "l" {\n  s = "a\\\\d \\u00e9\\"q\\""\n  r = `\\d`\n  /* more */\n' +
      '  o = {k = [1, 2.5, true, null], "q.r" = z.w.v,}\n  list = [\n    "a",\n    "b",\n  ]\n  inner {\n  }\n}\n',
  );
  assertEquals(block.name, "x.y");
  assertEquals(block.label, "l");
  assertEquals(block.attributes.s, 'a\\d \u00e9"q"');
  assertEquals(block.attributes.r, "\\d");
  assertEquals(block.attributes.o, { k: [1, 2.5, true, null], "q.r": new AlloyRef("z.w.v") });
  assertEquals(block.attributes.list, ["a", "b"]);
  assertEquals(block.blocks, [{ name: "inner", label: null, attributes: {}, blocks: [] }]);
  for (
    const [src, why] of [
      ['a "x" {\n  b = "\\d"\n}\n', /unknown escape sequence/],
      ['a "x" {\n  b = {\n    c = "1"\n  }\n}\n', /missing "," before a line break/],
      ['a "x" {\n  b = "1" c = "2"\n}\n', /line break/],
      ['a "x" {\n  b = "open\n}\n', /not terminated/],
      ['a "x" {\n  b = sys.env("X")\n}\n', /function calls/],
      ['a "x" {\n  b = 1\n  b = 2\n}\n', /duplicate attribute/],
      ["b = 1\n", /top-level attributes/],
    ] as const
  ) assertMatch(assertThrows(() => parseAlloy(src), SyntaxError).message, why, src);
});

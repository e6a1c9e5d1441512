/**
 * Clients that cut or stall a request body, against a running server (raw HTTP over Deno.connect):
 * a body the client ends early is the client's 400, never a 500 counted as a server error; a body
 * that stops arriving is 408 once REQUEST_BODY_TIMEOUT_MS has passed, for the JSON API and the
 * dashboard's forms alike.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { hasServer } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";
import { parseScrape } from "./_prom.ts";
import { serverEnv, startServer } from "./_process.ts";

const encoder = new TextEncoder();

/** An answer read off the socket: status line, headers (lower-cased) and body. */
interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Reads one HTTP/1.1 response (Content-Length framed); null when the server closed without one. */
async function readAnswer(conn: Deno.Conn): Promise<RawAnswer | null> {
  const buf = new Uint8Array(16 * 1024);
  let text = "";
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    if (end !== -1) {
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const headers = new Map(lines.map((l) => {
        const i = l.indexOf(":");
        return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()] as [string, string];
      }));
      const length = Number(headers.get("content-length") ?? 0);
      if (text.length - end - 4 >= length) {
        return {
          status: Number(statusLine.split(" ")[1]),
          headers,
          body: text.slice(end + 4, end + 4 + length),
        };
      }
    }
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return null;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

/** Sends a POST's head and the first part of its body, then does `then` and reads what comes back. */
async function post(
  url: string,
  path: string,
  headers: Record<string, string>,
  part: string,
  then: "half-close" | "close" | "stall",
): Promise<RawAnswer | null> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const head = [
      `POST ${path} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    await conn.write(encoder.encode(head.join("\r\n") + "\r\n\r\n" + part));
    if (then === "close") return null;
    if (then === "half-close") await conn.closeWrite();
    // Not a measure of the bound: only so that a server that never answers fails the test.
    const giveUp = setTimeout(() => conn.close(), 20_000);
    try {
      return await readAnswer(conn);
    } finally {
      clearTimeout(giveUp);
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

const LOGIN_PART = '{"email": "admin@example.test", "pass';

/** The HTTP request counter's samples for a route, by status class. */
async function requestCounts(url: string, route: string): Promise<Record<string, number>> {
  const scrape = parseScrape(await (await fetch(`${url}/metrics`)).text());
  const counts: Record<string, number> = {};
  for (const s of scrape.samples("levelguard_http_requests_total")) {
    if (s.labels.route === route) {
      counts[s.labels.status_class] = (counts[s.labels.status_class] ?? 0) + s.value;
    }
  }
  return counts;
}

/** Every 5xx the server counted, whatever the route. */
async function serverErrors(url: string): Promise<number> {
  const scrape = parseScrape(await (await fetch(`${url}/metrics`)).text());
  return scrape.samples("levelguard_http_requests_total").filter((s) => s.labels.status_class === "5xx")
    .reduce((sum, s) => sum + s.value, 0);
}

Deno.test({
  name: "a body the client half-closes or closes mid-way is a 400 'incomplete', and the server counts no 5xx",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    const server = await startServer(serverEnv({ DATABASE_URL: db.url, DATA_DIR: dataDir, LOG_DIR: logDir }));
    try {
      const json = { "Content-Type": "application/json" };
      // Declared length and chunked: both end early with a half close, then read the answer.
      const declared = await post(
        server.url,
        "/api/v1/auth/login",
        { ...json, "Content-Length": "100" },
        LOGIN_PART,
        "half-close",
      );
      const chunked = await post(
        server.url,
        "/api/v1/auth/login",
        { ...json, "Transfer-Encoding": "chunked" },
        `${LOGIN_PART.length.toString(16)}\r\n${LOGIN_PART}\r\n`,
        "half-close",
      );
      for (const [what, answer] of [["declared", declared], ["chunked", chunked]] as const) {
        assert(answer, `${what}: an answer came`);
        assertEquals(answer.status, 400, `${what}: ${answer.body}`);
        assertEquals(answer.headers.get("content-type"), "application/problem+json");
        assertMatch(JSON.parse(answer.body).detail, /^The request body was incomplete/);
      }
      // A client that closes altogether hears nothing, and is counted as a 4xx too.
      await post(server.url, "/api/v1/auth/login", { ...json, "Content-Length": "100" }, LOGIN_PART, "close");
      const deadline = Date.now() + 10_000;
      let counts = await requestCounts(server.url, "/api/v1/auth/login");
      while ((counts["4xx"] ?? 0) < 3 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        counts = await requestCounts(server.url, "/api/v1/auth/login");
      }
      assertEquals(counts, { "4xx": 3 }, "three 4xx, no 5xx, on the route");
      assertEquals(await serverErrors(server.url), 0, "no server error anywhere");
      assert(!server.lines.some((l) => l.includes("unhandled error")), server.lines.join("\n"));
    } finally {
      await server.stop();
    }
  }));

Deno.test({
  name:
    "a body that stops arriving is answered 408 after REQUEST_BODY_TIMEOUT_MS, on the API and the dashboard",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    const server = await startServer(
      serverEnv({ DATABASE_URL: db.url, DATA_DIR: dataDir, LOG_DIR: logDir, REQUEST_BODY_TIMEOUT_MS: "500" }),
    );
    try {
      const { host } = new URL(server.url);
      const cases: [string, Record<string, string>, string][] = [
        ["/api/v1/auth/login", { "Content-Type": "application/json", "Content-Length": "100" }, LOGIN_PART],
        [
          "/api/v1/auth/login",
          { "Content-Type": "application/json", "Transfer-Encoding": "chunked" },
          '5\r\n{"ema\r\n',
        ],
        [
          "/admin/login",
          {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": "100",
            Origin: `http://${host}`,
          },
          "email=admin%40example.test&pass",
        ],
      ];
      for (const [path, headers, part] of cases) {
        const what = `${path} ${JSON.stringify(headers)}`;
        const answer = await post(server.url, path, headers, part, "stall");
        assert(answer, `${what}: an answer came while the client still held the connection`);
        assertEquals(answer.status, 408, `${what}: ${answer.body}`);
        assertEquals(answer.headers.get("content-type"), "application/problem+json", what);
        assertEquals(
          JSON.parse(answer.body).detail,
          "The request body did not arrive within 500 ms; send the whole body at once",
        );
      }
      assertEquals(await serverErrors(server.url), 0, "no server error anywhere");
    } finally {
      await server.stop();
    }
  }));

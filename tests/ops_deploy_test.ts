/**
 * The deployment files. ops/nginx/levelguard.conf: `nginx -t`, then a real nginx with TLS in front
 * of a real Levelguard. ops/systemd/levelguard.service: its settings, then Levelguard run with
 * exactly its ExecStart's permissions on PostgreSQL and on the embedded database, and
 * `systemd-analyze`. A part whose tool is missing is skipped, and its name says why.
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { createTestDatabase, hasServer } from "./_db.ts";
import { closedPort, until } from "./_fixture.ts";
import { LOAD_SECRET } from "./_load.ts";
import { hermeticEnv, startServer } from "./_process.ts";
import { configSchema } from "../lib/config.ts";
import {
  adaptSite,
  findExecutable,
  findNginx,
  mainConfig,
  makeCertificate,
  nginxTest,
  startNginx,
  stockConfig,
} from "./support/nginx.ts";
import { MEMORY_ENV } from "./support/server_process.ts";
import { hashPassword } from "../lib/password.ts";
import { seed } from "../lib/seed.ts";
import { assetUrls } from "../routes/assets.ts";
import { HSTS } from "../routes/middleware/secure_headers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url)).replace(/\/$/, "");
const SITE = join(ROOT, "ops/nginx/levelguard.conf");
const UNIT = join(ROOT, "ops/systemd/levelguard.service");

const nginxBin = await findNginx();
const openssl = await findExecutable("openssl");
const systemdAnalyze = await findExecutable("systemd-analyze", ["/usr/bin", "/bin"]);
const noNginx = !nginxBin || !openssl;
const nginxSkip = noNginx
  ? " (skipped: nginx or openssl is not installed; apt-get install nginx openssl)"
  : "";

// ---- small helpers ------------------------------------------------------------------------------

/** `name=value` pairs of a response's Set-Cookie headers. */
function cookies(res: Response): Record<string, string> {
  return Object.fromEntries(
    res.headers.getSetCookie().map((c) => c.split(";")[0].split("=", 2) as [string, string]),
  );
}

/** The sign-in form's CSRF token in a page. */
function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  assert(m, "the sign-in page has a CSRF field");
  return m[1];
}

/** Signs in through the dashboard's form at `base`; returns the session cookie (`name=value`). */
async function formLogin(
  base: string,
  email: string,
  password: string,
  client?: Deno.HttpClient,
): Promise<string> {
  const go = (init: RequestInit) =>
    client
      ? fetch(`${base}/admin/login`, { ...init, client, redirect: "manual" })
      : fetch(`${base}/admin/login`, { ...init, redirect: "manual" });
  const page = await go({});
  assertEquals(page.status, 200);
  const csrf = csrfOf(await page.text());
  const jar = cookies(page);
  const loginCookie = Object.entries(jar).find(([k]) => k.endsWith("lg_login"));
  assert(loginCookie, `a sign-in CSRF cookie was set: ${JSON.stringify(jar)}`);
  const res = await go({
    method: "POST",
    headers: {
      Origin: base,
      Cookie: loginCookie.join("="),
      "Content-Type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ _csrf: csrf, email, password, next: "/admin/health" }),
  });
  await res.body?.cancel();
  assertEquals(res.status, 303, "signed in");
  const session = Object.entries(cookies(res)).find(([k]) => k.endsWith("lg_session"));
  assert(session, "a session cookie was set");
  return session.join("=");
}

/** Reads from a stream until `text` arrived or `ms` passed; returns what arrived. */
async function readUntil(body: ReadableStream<Uint8Array>, text: string, ms: number): Promise<string> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let got = "";
  const deadline = Date.now() + ms;
  try {
    while (!got.includes(text) && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<null>((r) => timer = setTimeout(() => r(null), deadline - Date.now()));
      const chunk = await Promise.race([reader.read(), late]);
      clearTimeout(timer);
      if (chunk === null || chunk.done) break;
      got += chunk.value;
    }
  } finally {
    // Not awaited: a stream that never delivered may never settle its cancel either.
    reader.cancel().catch(() => {});
  }
  return got;
}

// ---- nginx ----------------------------------------------------------------------------------------

/** A temp prefix with a certificate, the adapted site and a main nginx.conf around it. */
/**
 * nginx reaches the app from this loopback address in the end-to-end test (`proxy_bind`), the app
 * trusts only it, and the test's own requests come from 127.0.0.1: as from a client elsewhere.
 */
const NGINX_ADDRESS = "127.0.0.2";

async function nginxPrefix(upstreamPort: number, options: { bind?: string } = {}) {
  const prefix = await Deno.makeTempDir({ prefix: "levelguard-nginx-" });
  // nginx started as root serves files as `nobody`: the webroot must be readable for it.
  await Deno.chmod(prefix, 0o755);
  const webroot = join(prefix, "acme");
  await Deno.mkdir(join(webroot, ".well-known/acme-challenge"), { recursive: true, mode: 0o755 });
  const cert = await makeCertificate(prefix);
  const httpPort = closedPort();
  const httpsPort = closedPort();
  const site = adaptSite(await Deno.readTextFile(SITE), {
    httpPort,
    httpsPort,
    upstreamPort,
    certFile: cert.certFile,
    keyFile: cert.keyFile,
    webroot,
    logDir: prefix,
  });
  const sitePath = join(prefix, "levelguard.conf");
  const bound = options.bind
    ? site.replace(/^(\s*)proxy_http_version 1\.1;$/m, `$&\n$1proxy_bind ${options.bind};`)
    : site;
  await Deno.writeTextFile(sitePath, bound);
  const conf = join(prefix, "nginx.conf");
  await Deno.writeTextFile(conf, mainConfig(prefix, sitePath));
  return { prefix, conf, sitePath, cert, webroot, httpPort, httpsPort };
}

Deno.test({
  name: "the nginx site passes nginx -t, alone and inside the system's stock nginx.conf" + nginxSkip,
  ignore: noNginx,
}, async () => {
  const p = await nginxPrefix(closedPort());
  try {
    const alone = await nginxTest(nginxBin!, p.prefix, p.conf);
    assert(alone.ok, alone.output);
    // Debian's nginx.conf sets gzip, ssl_protocols ... at http level: no directive here may clash.
    const stock = await stockConfig(p.prefix, p.sitePath);
    if (stock) {
      const stockPath = join(p.prefix, "stock.conf");
      await Deno.writeTextFile(stockPath, stock);
      const inStock = await nginxTest(nginxBin!, p.prefix, stockPath);
      assert(inStock.ok, inStock.output);
    }
  } finally {
    await Deno.remove(p.prefix, { recursive: true });
  }
});

Deno.test({
  name: "behind nginx: HTTP redirects to HTTPS but serves ACME challenges; over TLS the app gets the " +
    "forwarded client, scheme and host (HSTS, __Host- cookies, the dashboard's Origin check), request ids " +
    "match, /metrics is refused, static files keep their cache headers, the event stream is not buffered, " +
    "bodies are capped, nginx limits a client after the burst but never the probes, and a stopped app is " +
    "a 503 problem" + (nginxSkip || (hasServer ? "" : " (skipped: needs a PostgreSQL server)")),
  ignore: noNginx || !hasServer,
}, async () => {
  const db = await createTestDatabase({ max: 2 });
  const work = await Deno.makeTempDir({ prefix: "levelguard-nginx-app-" });
  const password = "nginx-admin-password";
  await db.sql`
    INSERT INTO users (email, hashed_password, full_name, role)
    VALUES ('admin@nginx.test', ${await hashPassword(password)}, 'Admin', 'ADMIN')`;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  let client: Deno.HttpClient | undefined;
  let prefix: string | undefined;
  try {
    server = await startServer({
      DATABASE_URL: db.url,
      JWT_SECRET: LOAD_SECRET,
      DATA_DIR: join(work, "data"),
      LOG_DIR: join(work, "logs"),
      TRUST_PROXY: NGINX_ADDRESS,
      SCAN_ENABLED: "0",
      LOG_REQUESTS: "1",
      // The app's own limiter is on but exempts loopback: a request through nginx is exempt only
      // if the app took the address nginx appended, not the one the client wrote.
      RATE_LIMIT_PER_MINUTE: "100",
      RATE_LIMIT_EXEMPT: "127.0.0.0/8",
    });
    const p = await nginxPrefix(Number(new URL(server.url).port), { bind: NGINX_ADDRESS });
    prefix = p.prefix;
    nginx = await startNginx(nginxBin!, p.prefix, p.conf, p.httpsPort);
    client = Deno.createHttpClient({ caCerts: [p.cert.pem] });
    const https = `https://127.0.0.1:${p.httpsPort}`;
    const http = `http://127.0.0.1:${p.httpPort}`;
    const get = (path: string, init: RequestInit = {}) =>
      fetch(https + path, { client, redirect: "manual", ...init });

    // Plain HTTP: a redirect to the configured name, except certbot's challenges.
    const redirect = await fetch(`${http}/admin/health?tab=1`, { redirect: "manual" });
    await redirect.body?.cancel();
    assertEquals(redirect.status, 301);
    assertEquals(redirect.headers.get("location"), "https://levelguard.example.com/admin/health?tab=1");
    await Deno.writeTextFile(join(p.webroot, ".well-known/acme-challenge/token-1"), "token-1.key\n");
    await Deno.chmod(join(p.webroot, ".well-known/acme-challenge/token-1"), 0o644);
    const challenge = await fetch(`${http}/.well-known/acme-challenge/token-1`);
    assertEquals([challenge.status, await challenge.text()], [200, "token-1.key\n"]);

    // TLS: the probe, with the app's HSTS (it learnt https from X-Forwarded-Proto) sent once.
    const health = await get("/healthz");
    assertEquals([health.status, await health.json()], [200, { status: "ok" }]);
    assertEquals(health.headers.get("strict-transport-security"), HSTS);
    assertEquals(health.headers.get("server"), "nginx", "no version in the Server header");
    const ready = await get("/readyz");
    assertEquals([ready.status, await ready.json()], [200, { status: "ready" }]);

    // Request ids: a client's own, valid or not, becomes nginx's (the app keeps its trusted proxy's),
    // logged by both; nginx logs the client's beside it.
    const clients = await get("/api/v1/openapi.json", { headers: { "X-Request-Id": "client-id_42" } });
    await clients.body?.cancel();
    assertMatch(clients.headers.get("x-request-id") ?? "", /^[0-9a-f]{32}$/);
    const replaced = await get("/api/v1/no-such-thing", { headers: { "X-Request-Id": "not valid!" } });
    await replaced.body?.cancel();
    const nginxId = replaced.headers.get("x-request-id") ?? "";
    assertMatch(nginxId, /^[0-9a-f]{32}$/);

    // /metrics is nginx's 403; the app answers loopback clients only anyway.
    const metrics = await get("/metrics");
    await metrics.body?.cancel();
    assertEquals(metrics.status, 403);

    // The client address: a forged X-Forwarded-For is followed by the peer nginx appends, and the
    // app, walking from the right past nginx, takes that one (loopback, exempt: no RateLimit
    // header). The forged entry would count only if the app believed it (a budget of its own).
    const forged = { "X-Forwarded-For": "203.0.113.9" };
    const viaNginx = await get("/api/v1/openapi.json", { headers: forged });
    await viaNginx.body?.cancel();
    assertEquals([viaNginx.status, viaNginx.headers.get("ratelimit")], [200, null]);
    // Straight to the app from an address that is no listed proxy, the header means nothing either.
    const direct = await fetch(`${server.url}/api/v1/openapi.json`, { headers: forged });
    await direct.body?.cancel();
    assertEquals([direct.status, direct.headers.get("ratelimit")], [200, null]);

    // Static files: the app's immutable caching passes through once, compressed by nginx.
    const css = await get((await assetUrls()).css, { headers: { "Accept-Encoding": "gzip" } });
    await css.body?.cancel();
    assertEquals(css.status, 200);
    assertEquals(css.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assertEquals(css.headers.get("expires"), null);
    assertEquals(css.headers.get("content-encoding"), "gzip");

    // The dashboard over TLS: __Host- cookies, and the Origin check accepts https://host:port.
    const session = await formLogin(https, "admin@nginx.test", password, client);
    assertMatch(session, /^__Host-lg_session=/);
    const page = await get("/admin/health", { headers: { Cookie: session, "Accept-Encoding": "gzip" } });
    await page.body?.cancel();
    assertEquals(page.status, 200);
    assertEquals(page.headers.get("content-encoding"), null, "pages with CSRF tokens are not compressed");

    // The live stream: the first event arrives at once through nginx (no buffering). Over
    // HTTP/1.1, where proxy_buffering on would hold it back (HTTP/2 happens not to).
    const h1 = Deno.createHttpClient({ caCerts: [p.cert.pem], http2: false });
    const abort = new AbortController();
    const limit = setTimeout(() => abort.abort(), 3000);
    try {
      const started = performance.now();
      const events = await fetch(`${https}/admin/health/events`, {
        client: h1,
        signal: abort.signal,
        headers: { Cookie: session },
      }).catch((err) => {
        throw new Error(`the event stream did not answer through nginx within 3 s (buffered?): ${err}`);
      });
      assertEquals(events.status, 200);
      assertMatch(events.headers.get("content-type") ?? "", /^text\/event-stream/);
      const first = await readUntil(events.body!, "event: hello", 1000);
      assertMatch(first, /event: hello\ndata: \{"live":true\}/);
      assert(performance.now() - started < 1000, "the hello event came within a second");
    } finally {
      clearTimeout(limit);
      abort.abort();
      h1.close();
    }

    // Bodies: above nginx's cap nginx refuses, between the app's 16 KiB and that cap the app does;
    // both as problem+json.
    for (const size of [40_000, 20_000]) {
      const big = await get("/api/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: "a@b.c", password: "x".repeat(size) }),
      });
      assertEquals(big.status, 413, `${size} bytes`);
      assertEquals(big.headers.get("content-type"), "application/problem+json");
      assertMatch((await big.json()).detail, /at most 16384 bytes/);
    }

    // nginx's limit: one client gets the burst, then 429 problems; the probes stay open for it.
    const statuses: number[] = [];
    let refusal: Response | undefined;
    for (let i = 0; i < 150; i++) {
      const res = await get("/api/v1/no-such-thing");
      statuses.push(res.status);
      if (res.status === 429 && !refusal) refusal = res;
      else await res.body?.cancel();
    }
    const allowed = statuses.filter((s) => s === 404).length;
    assertEquals(statuses.filter((s) => s !== 404 && s !== 429), []);
    assert(allowed <= 103 && allowed >= 60, `nginx let ${allowed} of 150 through`);
    assert(refusal, "nginx refused after the burst");
    assertEquals(refusal.headers.get("content-type"), "application/problem+json");
    assertEquals(refusal.headers.get("retry-after"), "60");
    assertEquals((await refusal.json()).status, 429);
    for (const probe of ["/healthz", "/readyz", "/healthz"]) {
      const res = await get(probe);
      await res.body?.cancel();
      assertEquals(res.status, 200, `${probe} while the client is limited`);
    }

    // Both logs carry nginx's request id.
    const access = await Deno.readTextFile(join(p.prefix, "levelguard.access.log"));
    assert(access.includes(`id=${nginxId}`), "nginx logged its request id");
    assert(access.includes('client_id="client-id_42"'), "and the client's own beside it");
    assert(server.lines.some((l) => l.includes(`"request_id":"${nginxId}"`)), "the app logged the same id");

    // The app stopped: nginx answers 503 problem+json with Retry-After instead of a bare 502.
    assertEquals(await server.stop(), 0);
    server = undefined;
    const down = await get("/readyz");
    assertEquals(down.status, 503);
    assertEquals(down.headers.get("content-type"), "application/problem+json");
    assertEquals(down.headers.get("retry-after"), "5");
    assertEquals((await down.json()).title, "Service unavailable");
  } finally {
    client?.close();
    await nginx?.stop();
    await server?.stop();
    await db.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
    if (prefix) await Deno.remove(prefix, { recursive: true }).catch(() => {});
  }
});

// ---- systemd --------------------------------------------------------------------------------------

/** A unit file: section → key → values (a key may repeat), continuation lines joined. */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const raw of lines) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1], section);
      continue;
    }
    const eq = line.indexOf("=");
    assert(section && eq > 0, `a key=value line inside a section: ${line}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...section.get(key) ?? [], line.slice(eq + 1).trim().replace(/\s+/g, " ")]);
  }
  return unit;
}

/** The one value of a key (the last, as systemd takes it), or undefined. */
function value(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** The Environment= assignments of [Service]. */
function environment(unit: Unit): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unit.get("Service")?.get("Environment") ?? []) {
    assert(!/["']/.test(line), `no quoting in Environment=: ${line}`);
    for (const pair of line.split(" ")) {
      const eq = pair.indexOf("=");
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

/** The ExecStart's argv and the paths its permissions name. */
function execStart(unit: Unit) {
  const argv = value(unit, "Service", "ExecStart")!.split(" ");
  const list = (flag: string) =>
    argv.filter((a) => a.startsWith(`${flag}=`)).flatMap((a) => a.slice(flag.length + 1).split(","));
  return { argv, read: list("--allow-read"), write: list("--allow-write") };
}

const unitText = await Deno.readTextFile(UNIT);

Deno.test("the systemd unit: an unprivileged, hardened service with a graceful stop and the start task's memory settings", async () => {
  const unit = parseUnit(unitText);
  const service = (key: string) => value(unit, "Service", key);
  const env = environment(unit);
  const expected: Record<string, string> = {
    Type: "exec",
    User: "levelguard",
    Group: "levelguard",
    WorkingDirectory: "/opt/levelguard",
    EnvironmentFile: "/etc/levelguard/levelguard.env",
    Restart: "on-failure",
    RestartSec: "2",
    KillSignal: "SIGTERM",
    KillMode: "mixed",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    PrivateDevices: "yes",
    ProtectKernelTunables: "yes",
    ProtectKernelModules: "yes",
    ProtectControlGroups: "yes",
    RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
    LockPersonality: "yes",
    RestrictRealtime: "yes",
    RestrictSUIDSGID: "yes",
    CapabilityBoundingSet: "",
    SystemCallArchitectures: "native",
  };
  for (const [key, want] of Object.entries(expected)) assertEquals(service(key), want, key);
  // V8's JIT needs writable and executable memory.
  assert(!["yes", "true", "1"].includes(service("MemoryDenyWriteExecute") ?? "no"));
  assertEquals(value(unit, "Install", "WantedBy"), "multi-user.target");
  assertMatch(value(unit, "Unit", "After") ?? "", /network-online\.target.*postgresql\.service/);
  assertMatch(value(unit, "Unit", "Wants") ?? "", /network-online\.target/);

  // The same memory settings as `deno task start`.
  assertEquals({ GLIBC_TUNABLES: env.GLIBC_TUNABLES, DENO_V8_FLAGS: env.DENO_V8_FLAGS }, MEMORY_ENV);
  const startTask: string = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks.start;
  for (const [k, v] of Object.entries(MEMORY_ENV)) assert(startTask.includes(`${k}=${v} `), k);

  // Behind nginx on the same host.
  assertEquals([env.HOST, env.TRUST_PROXY], ["127.0.0.1", "127.0.0.1/32"]);

  // Stopping outlasts the graceful shutdown: SHUTDOWN_GRACE_S, then the pool's close.
  const grace = configSchema.parse({}).SHUTDOWN_GRACE_S;
  const timeout = Number(/^(\d+)s?$/.exec(service("TimeoutStopSec") ?? "")?.[1]);
  assert(timeout > grace + 10, `TimeoutStopSec ${timeout} > ${grace} + 10`);

  // Exact permissions: never -A, dependencies only from the deploy-time cache.
  const { argv, read, write } = execStart(unit);
  assert(argv[0].startsWith("/") && argv[1] === "run", argv.join(" "));
  for (const flag of ["-A", "--allow-all", "--allow-run", "--allow-ffi", "--allow-sys"]) {
    assert(!argv.some((a) => a === flag || a.startsWith(`${flag}=`)), `no ${flag}`);
  }
  assert(argv.includes("--cached-only") && argv.includes("--frozen"));
  assertEquals(argv.at(-1), "/opt/levelguard/main.ts");
  assertEquals(new Set(write), new Set([env.DATA_DIR, env.LOG_DIR]));
  for (const path of [...write, "/opt/levelguard", env.DENO_DIR]) {
    assert(read.includes(path), `reads ${path}`);
  }
  // Writable for the service under ProtectSystem=strict; DENO_DIR outside what ProtectHome hides.
  const writable = (service("ReadWritePaths") ?? "").split(" ");
  for (const path of write) assert(writable.includes(path), `ReadWritePaths has ${path}`);
  assert(!/^\/(root|home|run\/user)\//.test(env.DENO_DIR), env.DENO_DIR);
});

/** The deno installation's cache directory (what DENO_DIR is for this test run). */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    env: hermeticEnv(),
    clearEnv: true,
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

/**
 * Starts Levelguard exactly as the unit does (its ExecStart argv, WorkingDirectory and
 * Environment=), with production paths mapped onto the checkout and temp dirs, plus `env`.
 */
async function startAsUnit(paths: { data: string; logs: string }, env: Record<string, string>) {
  const unit = parseUnit(unitText);
  const map: [string, string][] = [
    [value(unit, "Service", "ExecStart")!.split(" ")[0], Deno.execPath()],
    ["/var/cache/levelguard/deno", await denoDir()],
    ["/opt/levelguard", ROOT],
    ["/var/lib/levelguard", paths.data],
    ["/var/log/levelguard", paths.logs],
  ];
  const local = (s: string) => map.reduce((acc, [from, to]) => acc.replaceAll(from, to), s);
  const [bin, ...args] = execStart(unit).argv.map(local);
  const unitEnv = Object.fromEntries(Object.entries(environment(unit)).map(([k, v]) => [k, local(v)]));
  const child = new Deno.Command(bin, {
    args,
    cwd: local(value(unit, "Service", "WorkingDirectory")!),
    env: hermeticEnv({ ...unitEnv, PORT: "0", ...env }),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let url: string | undefined;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      for (const line of chunk.split("\n")) {
        if (line) lines.push(line);
        url ??= /"msg":"listening","url":"(http:\/\/[^"]+)"/.exec(line)?.[1];
      }
    }
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const { code } = await status;
    clearTimeout(timer);
    await pumped;
    return code;
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) {
      await pumped;
      throw new Error(`Levelguard exited under the unit's permissions:\n${lines.join("\n")}`);
    }
    if (url && await fetch(`${url}/readyz`).then((r) => r.body?.cancel().then(() => r.ok), () => false)) {
      return { url, lines, stop };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`Levelguard was not ready within 60 s:\n${lines.join("\n")}`);
}

/** A local webhook receiver: the POSTs it got. */
function webhookReceiver() {
  const received: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    received.push(await req.json());
    return new Response("ok");
  });
  return { url: `http://127.0.0.1:${server.addr.port}/hook`, received, close: () => server.shutdown() };
}

const PERMISSION_TROUBLE = /NotCapable|PermissionDenied|Requires \w+ access|--allow-|not writable/;

/**
 * What a deployment does: readiness, an API login, a progress update, a check (its JSON log
 * written, its status webhook sent), the dashboard's sign-in and page, a scrape; then SIGTERM.
 */
async function exerciseAsUnit(
  mode: Record<string, string>,
  admin: { email: string; password: string },
  options: { prepare?: () => Promise<void>; webhook: boolean },
) {
  const work = await Deno.makeTempDir({ prefix: "levelguard-unit-" });
  const paths = { data: join(work, "data"), logs: join(work, "logs") };
  const hook = webhookReceiver();
  const app = await startAsUnit(paths, {
    ...mode,
    SCAN_ENABLED: "1",
    SCAN_CRON: "0 0 1 1 *",
    ALERT_WEBHOOK_URLS: hook.url,
    SEED_ADMIN_PASSWORD: admin.password,
  }).catch(async (err) => {
    await hook.close();
    await Deno.remove(work, { recursive: true });
    throw err;
  });
  let code: number | undefined;
  try {
    await options.prepare?.();
    const login = await fetch(`${app.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(admin),
    });
    assertEquals(login.status, 200, "login (scrypt)");
    const auth = { Authorization: `Bearer ${(await login.json()).access_token}` };
    const update = await fetch(`${app.url}/api/v1/specializations/progress/update`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 25 }),
    });
    assertEquals(update.status, 200, await update.text());
    const check = await fetch(`${app.url}/api/v1/health/check-now`, { method: "POST", headers: auth });
    assertEquals([check.status, (await check.json()).outcome], [200, "success"]);
    const logs = await Array.fromAsync(Deno.readDir(join(paths.logs, "integrity_checks")));
    assert(logs.some((e) => e.name.endsWith(".json")), "the check's JSON log was written to LOG_DIR");

    const session = await formLogin(app.url, admin.email, admin.password);
    const page = await fetch(`${app.url}/admin/health`, { headers: { Cookie: session } });
    await page.body?.cancel();
    assertEquals(page.status, 200);

    const scrape = await fetch(`${app.url}/metrics`);
    const text = await scrape.text();
    assertEquals(scrape.status, 200);
    assertMatch(text, /^levelguard_http_requests_total\{/m);
    // Real process figures under the scoped permissions (not a silent 0 from an unreadable /proc).
    const rss = Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)?.[1]);
    assert(rss > 10_000_000, `process_resident_memory_bytes ${rss}`);
    const hasGit = await Deno.stat(join(ROOT, ".git/HEAD")).then(() => true, () => false);
    if (hasGit) {
      assertMatch(text, /levelguard_build_info\{[^}]*commit="[0-9a-f]{12}"/, "the commit from .git");
    }

    if (options.webhook) {
      await until("the status webhook went out", () => hook.received.length > 0, 5000, 50);
    }
  } finally {
    code = await app.stop();
    await hook.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  assertEquals(code, 0, `graceful exit:\n${app.lines.slice(-20).join("\n")}`);
  assert(app.lines.some((l) => l.includes('"msg":"stopped"')), "stopped gracefully");
  const trouble = app.lines.filter((l) => PERMISSION_TROUBLE.test(l));
  assertEquals(trouble, [], "no permission was missing");
}

Deno.test({
  name: "the unit's exact permissions run Levelguard on PostgreSQL: migrations, login, update, check, " +
    "webhook, dashboard, scrape, graceful stop" + (hasServer ? "" : " (skipped: needs a PostgreSQL server)"),
  ignore: !hasServer,
}, async () => {
  // An empty database: the app's own start-up applies the migrations; then a few students with
  // pairs broken on purpose, so the check finds them and the status webhook fires.
  const db = await createTestDatabase({ max: 1, empty: true });
  try {
    const admin = { email: "admin@unit.test", password: "unit-admin-password" };
    await exerciseAsUnit({ DATABASE_URL: db.url }, admin, {
      webhook: true,
      prepare: async () => {
        const seeded = await seed(db.sql, {
          students: 10,
          desyncRate: 0.5,
          adminEmail: admin.email,
          adminPassword: admin.password,
          studentPassword: "unit-student-password",
        });
        assert(seeded.desyncedPairs > 0);
      },
    });
  } finally {
    await db.close();
  }
});

Deno.test(
  "the unit's exact permissions run Levelguard on the embedded database: its first start, demo data, " +
    "login, update, check, dashboard, scrape, graceful stop",
  async () => {
    // The demo data (0.5 % of its pairs broken) stays healthy: no status change, so no webhook.
    await exerciseAsUnit({}, { email: "admin@levelguard.local", password: "unit-embedded-password" }, {
      webhook: false,
    });
  },
);

const noAnalyze = !systemdAnalyze;
const analyzeSkip = noAnalyze ? " (skipped: systemd-analyze is not installed; apt-get install systemd)" : "";

/** The unit with the deno path of this machine (verify checks that ExecStart's binary exists). */
async function localUnitFile(): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "levelguard-unit-file-" });
  const file = join(dir, "levelguard.service");
  const bin = value(parseUnit(unitText), "Service", "ExecStart")!.split(" ")[0];
  await Deno.writeTextFile(file, unitText.replaceAll(bin, Deno.execPath()));
  return { dir, file };
}

async function analyze(args: string[]) {
  const out = await new Deno.Command(systemdAnalyze!, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: out.success, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test({
  name: "systemd-analyze verify finds nothing to say about the unit, and rates its exposure at most 2.0" +
    analyzeSkip,
  ignore: noAnalyze,
}, async () => {
  const { dir, file } = await localUnitFile();
  try {
    // Unknown keys and bad values are warnings with exit 0: any line naming the file is a failure.
    const verify = await analyze(["verify", file]);
    assert(verify.ok, verify.text);
    assertEquals(verify.text.split("\n").filter((l) => l.includes("levelguard")), [], verify.text);
    const security = await analyze(["security", "--offline=yes", file]);
    if (/unrecognized option|unknown option/i.test(security.text)) return; // systemd < 250
    const level = Number(/Overall exposure level for levelguard\.service: ([\d.]+)/.exec(security.text)?.[1]);
    assert(level <= 2.0, `exposure ${level}:\n${security.text}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

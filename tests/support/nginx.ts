/**
 * nginx in tests: the binary, a throwaway TLS certificate, ops/nginx/levelguard.conf adapted to
 * temp paths and free ports, a minimal main configuration around it, and nginx in the foreground.
 */
import { join } from "node:path";

const SBIN_DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin", "/opt/homebrew/bin"];

/** The path of an executable found on PATH (or in `extraDirs`), or null. */
export async function findExecutable(name: string, extraDirs: string[] = []): Promise<string | null> {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    try {
      const info = await Deno.stat(join(dir, name));
      if (info.isFile && (info.mode ?? 0o111) & 0o111) return join(dir, name);
    } catch { /* next */ }
  }
  return null;
}

/** The nginx binary (Debian keeps it in /usr/sbin, often not on a user's PATH), or null. */
export function findNginx(): Promise<string | null> {
  return findExecutable("nginx", SBIN_DIRS);
}

async function run(cmd: string, args: string[], cwd?: string): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command(cmd, { args, cwd, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { ok: out.success, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** A certificate and key for `localhost` and 127.0.0.1 in `dir` (self-signed, CA:FALSE, two days). */
export async function makeCertificate(
  dir: string,
): Promise<{ certFile: string; keyFile: string; pem: string }> {
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  const { ok, output } = await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    // rustls refuses a CA certificate as a server's own; this one is only trusted directly.
    "-addext",
    "basicConstraints=critical,CA:FALSE",
  ]);
  if (!ok) throw new Error(`openssl failed:\n${output}`);
  return { certFile, keyFile, pem: await Deno.readTextFile(certFile) };
}

/** Where the adapted site points instead of the production paths and ports. */
export interface SiteOptions {
  httpPort: number;
  httpsPort: number;
  upstreamPort: number;
  certFile: string;
  keyFile: string;
  /** Replaces /var/www/letsencrypt (certbot's webroot). */
  webroot: string;
  /** Replaces /var/log/nginx. */
  logDir: string;
}

/**
 * ops/nginx/levelguard.conf with test paths and loopback ports: every production value it
 * replaces must be there (else the file changed and this adapter with it), IPv6 listeners
 * are dropped (containers often lack IPv6), and nothing outside the temp paths is left.
 */
export function adaptSite(text: string, o: SiteOptions): string {
  const replacements: [RegExp, string][] = [
    [/\/etc\/letsencrypt\/live\/levelguard\.example\.com\/fullchain\.pem/g, o.certFile],
    [/\/etc\/letsencrypt\/live\/levelguard\.example\.com\/privkey\.pem/g, o.keyFile],
    [/^(\s*)listen 80;$/gm, `$1listen 127.0.0.1:${o.httpPort};`],
    [/^(\s*)listen 443 ssl http2;$/gm, `$1listen 127.0.0.1:${o.httpsPort} ssl http2;`],
    [/^[ \t]*listen \[::\]:(80|443)[^;]*;\n/gm, ""],
    [/^(\s*)server 127\.0\.0\.1:8000;/gm, `$1server 127.0.0.1:${o.upstreamPort};`],
    [/\/var\/www\/letsencrypt/g, o.webroot],
    [/\/var\/log\/nginx\//g, o.logDir.replace(/\/?$/, "/")],
  ];
  let out = text;
  for (const [pattern, replacement] of replacements) {
    if (!pattern.test(out)) throw new Error(`the nginx site no longer contains ${pattern}; update adaptSite`);
    pattern.lastIndex = 0;
    out = out.replace(pattern, replacement);
  }
  const leftover = out.split("\n").filter((l) => !/^\s*#/.test(l) && /\s\/(etc|var)\//.test(l));
  if (leftover.length) throw new Error(`production paths left in the adapted site:\n${leftover.join("\n")}`);
  return out;
}

/** A main nginx.conf under `prefix` that includes `site` inside `http {}`, as Debian's does. */
export function mainConfig(prefix: string, site: string): string {
  const p = (name: string) => join(prefix, name);
  return [
    `pid ${p("nginx.pid")};`,
    `error_log ${p("error.log")} warn;`,
    "worker_processes 1;",
    "events { worker_connections 256; }",
    "http {",
    `  access_log ${p("access.log")};`,
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${p(`temp_${t}`)};`),
    `  include ${site};`,
    "}",
    "",
  ].join("\n");
}

/**
 * The system's /etc/nginx/nginx.conf with `site` in place of sites-enabled/* and the pid and
 * log files under `prefix` (for `nginx -t` only), or null when there is none.
 */
export async function stockConfig(prefix: string, site: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile("/etc/nginx/nginx.conf");
  } catch {
    return null;
  }
  if (!/include \/etc\/nginx\/sites-enabled\/\*;/.test(text)) return null;
  return text
    .replace(/include \/etc\/nginx\/sites-enabled\/\*;/, `include ${site};`)
    .replace(/^pid .*$/m, `pid ${join(prefix, "stock.pid")};`)
    .replace(/^(\s*)error_log [^;]*;/gm, `$1error_log ${join(prefix, "error.log")};`)
    .replace(/^(\s*)access_log [^;]*;/gm, `$1access_log ${join(prefix, "access.log")};`);
}

/** `nginx -t` on a configuration; ok and what nginx said. */
export function nginxTest(nginx: string, prefix: string, conf: string) {
  return run(nginx, ["-t", "-p", prefix, "-c", conf]);
}

/** A foreground nginx. */
export interface NginxProcess {
  /** What nginx wrote to stdout and stderr so far. */
  output: string[];
  /** Fast shutdown (SIGTERM; SIGKILL after 5 s); resolves once it exited. */
  stop(): Promise<void>;
}

/** Starts nginx in the foreground and resolves once `readyPort` accepts connections. */
export async function startNginx(
  nginx: string,
  prefix: string,
  conf: string,
  readyPort: number,
): Promise<NginxProcess> {
  const child = new Deno.Command(nginx, {
    args: ["-p", prefix, "-c", conf, "-g", "daemon off;"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output.push(chunk);
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await status;
    clearTimeout(timer);
    await pumped;
  };
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) {
      await pumped;
      throw new Error(`nginx exited at start:\n${output.join("")}`);
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: readyPort });
      conn.close();
      return { output, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  await stop();
  throw new Error(`nginx did not listen on ${readyPort} within 10 s:\n${output.join("")}`);
}

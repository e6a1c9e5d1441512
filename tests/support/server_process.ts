/**
 * Running Levelguard as a child process, for tests, benchmarks and the load
 * task: a clean environment (nothing exported in the caller's shell leaks in),
 * `main.ts` started on a free port, ready once `/readyz` answers 200.
 */
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

// What Deno and the system need to run at all, and the scratch LOG_DIR/DATA_DIR
// the test runner sets (so nothing lands in the checkout); the rest is explicit.
const PASSED_THROUGH = [
  "PATH",
  "HOME",
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "TMPDIR",
  "LANG",
  "NO_COLOR",
  "LOG_DIR",
  "DATA_DIR",
];

/**
 * `deno run` for a child of the tests or a benchmark: from the cache only. The packages are there
 * (the parent's `deno task` fetched them), but Deno 2.9 re-fetches registry metadata on every run
 * when the cache was filled by `deno check`/`deno test` rather than by running an entry point, and
 * prints a "Download ..." line per package on stderr, where the tests expect one line.
 */
export const DENO_RUN = ["run", "--cached-only", "-A"] as const;

/** The environment of a child: the passed-through basics plus `env`. */
export function hermeticEnv(env: Record<string, string> = {}): Record<string, string> {
  const base: Record<string, string> = {};
  for (const name of PASSED_THROUGH) {
    const value = Deno.env.get(name);
    if (value !== undefined) base[name] = value;
  }
  // Tests run a second time through PgBouncer (tests/run.ts): a process reaching it runs as behind one.
  const pooled = Deno.env.get("LG_TEST_POOLED_PORT");
  if (pooled && env.DATABASE_URL && new URL(env.DATABASE_URL).port === pooled) base.DB_PREPARE = "0";
  return { ...base, ...env };
}

/** Starts a script of the repository (`main.ts`, `tasks/…`) with a clean environment and piped output. */
export function spawnScript(script: string, args: string[], env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, ROOT + script, ...args],
    cwd: ROOT,
    env: hermeticEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** A running `main.ts`: its base URL, what it printed (the last 1,000 lines), and how to end it. */
export interface ServerProcess {
  url: string;
  child: Deno.ChildProcess;
  lines: string[];
  /** Sends `signal` (SIGKILL after 15 s) and waits for the exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/**
 * What `deno task start` sets before Deno starts, for a flat memory profile:
 * a fixed glibc mmap threshold, so a login's 16 MiB scrypt buffer is mapped
 * and unmapped instead of staying in each worker thread's malloc arena
 * (measured: RSS 77 → 217 MB after 60 logins without it, 77 → 86 MB with it);
 * and a 4 MB young generation for V8 (peak RSS 187 → 129 MB at ~24,000
 * status reads/s, for ~7 % of that throughput).
 */
export const MEMORY_ENV = {
  GLIBC_TUNABLES: "glibc.malloc.mmap_threshold=131072",
  DENO_V8_FLAGS: "--max-semi-space-size=4",
};

/** Starts `main.ts` with `env` (PORT defaults to 0, HOST to 127.0.0.1) and resolves once it is ready. */
export async function startServer(env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawnScript("main.ts", [], { PORT: "0", HOST: "127.0.0.1", ...MEMORY_ENV, ...env });
  const lines: string[] = [];
  let url: string | undefined;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (lines.length > 1000) lines.shift();
        const m = /"msg":"listening","url":"(http:\/\/[^"]+)"/.exec(line);
        if (m) url = m[1];
      }
    }
    if (rest) lines.push(rest);
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 15_000);
    const { code } = await status;
    clearTimeout(timer);
    await pumped;
    return code;
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`main.ts exited before it was ready:\n${lines.slice(-30).join("\n")}`);
    if (url) {
      const ready = await fetch(`${url}/readyz`).then((r) => r.body?.cancel().then(() => r.ok), () => false);
      if (ready) return { url, child, lines, stop };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop("SIGKILL");
  throw new Error(`main.ts was not ready within ${timeoutMs / 1000} s:\n${lines.slice(-30).join("\n")}`);
}

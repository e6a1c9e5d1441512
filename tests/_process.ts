/**
 * Child processes in tests: the app (`main.ts`) and the tasks (`lib/cli/*.ts`)
 * run with a clean environment, so nothing exported in the developer's shell
 * (DATABASE_URL, SEED_* passwords, PORT ...) changes a result.
 */

// What Deno and the system need to run at all, and the scratch LOG_DIR/DATA_DIR
// tests/run.ts sets (so nothing lands in the checkout); everything else is passed explicitly.
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

/** The environment of a child: the passed-through basics plus `env`. */
export function hermeticEnv(env: Record<string, string> = {}): Record<string, string> {
  const base: Record<string, string> = {};
  for (const name of PASSED_THROUGH) {
    const value = Deno.env.get(name);
    if (value !== undefined) base[name] = value;
  }
  return { ...base, ...env };
}

/** Runs a task's entry point (`lib/cli/*.ts`) or `main.ts` to its end and captures its output. */
export async function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: hermeticEnv(env),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Starts a script in the background with piped output (stop it with `kill`). */
export function spawnScript(script: string, args: string[], env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: hermeticEnv(env),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** A running `main.ts` child: its base URL, the lines it printed so far, and how to end it. */
export interface ServerProcess {
  url: string;
  child: Deno.ChildProcess;
  /** Everything printed on stdout and stderr so far, line by line. */
  lines: string[];
  /** Sends `signal` and waits for the exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/** Starts `main.ts` with `env` (PORT defaults to 0) and resolves once it listens and is ready. */
export async function startServer(env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawnScript("main.ts", [], { PORT: "0", HOST: "127.0.0.1", ...env });
  const lines: string[] = [];
  let url: string | undefined;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const m = /"msg":"listening","url":"(http:\/\/[^"]+)"/.exec(line);
        if (m) url = m[1];
      }
    }
    if (rest) lines.push(rest);
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status;
  let exited = false;
  status.then(() => exited = true);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`main.ts exited before it was ready:\n${lines.join("\n")}`);
    if (url) {
      const ready = await fetch(`${url}/readyz`).then((r) => r.body?.cancel().then(() => r.ok), () => false);
      if (ready) break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!url) {
    child.kill("SIGKILL");
    throw new Error(`main.ts did not listen within ${timeoutMs} ms:\n${lines.join("\n")}`);
  }
  return {
    url,
    child,
    lines,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      const { code } = await status;
      await pumped;
      return code;
    },
  };
}

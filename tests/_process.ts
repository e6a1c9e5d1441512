/**
 * Child processes in tests: the app (`main.ts`) and the tasks (`lib/cli/*.ts`)
 * run with a clean environment, so nothing exported in the developer's shell
 * (DATABASE_URL, SEED_* passwords, PORT ...) changes a result.
 */

// What Deno and the system need to run at all; everything else is passed explicitly.
const PASSED_THROUGH = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "LANG", "NO_COLOR"];

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

/**
 * Child processes in tests: the app (`main.ts`) and the tasks (`lib/cli/*.ts`)
 * run with a clean environment (lib/dev/server_process.ts), so nothing exported
 * in the developer's shell (DATABASE_URL, SEED_* passwords, PORT ...) changes a result.
 */
import { hermeticEnv } from "../lib/dev/server_process.ts";

export { hermeticEnv, type ServerProcess, spawnScript, startServer } from "../lib/dev/server_process.ts";

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

/**
 * Child processes in tests: the app (`main.ts`) and the tasks (`tasks/*.ts`)
 * run with a clean environment (tests/support/server_process.ts), so nothing exported
 * in the developer's shell (DATABASE_URL, SEED_* passwords, PORT ...) changes a result.
 */
import { DENO_RUN, hermeticEnv } from "./support/server_process.ts";
import { LOAD_SECRET } from "./_load.ts";

export {
  DENO_RUN,
  hermeticEnv,
  type ServerProcess,
  spawnScript,
  startServer,
} from "./support/server_process.ts";

/**
 * The environment of a test server (`startServer`): the fault tests' JWT
 * secret, and the schedule, the rate limit and request logs off unless `extra`
 * turns them on.
 */
export function serverEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    JWT_SECRET: LOAD_SECRET,
    LOG_REQUESTS: "0",
    SCAN_ENABLED: "0",
    RATE_LIMIT_PER_MINUTE: "0",
    ...extra,
  };
}

/** Runs a task's entry point (`tasks/*.ts`) or `main.ts` to its end and captures its output. */
export async function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, script, ...args],
    env: hermeticEnv(env),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * `deno task dev`: main.ts under `deno run --watch`. The arguments are checked
 * here first, because under --watch an exit only makes the watcher wait for a
 * file change: `--help` and a bad option end the task (0 and 2) instead.
 */
import { fileURLToPath } from "node:url";
import { argsOrExit } from "../lib/args.ts";
import { serveTask } from "../lib/start_args.ts";

argsOrExit(serveTask("dev"));

const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "--watch", fileURLToPath(new URL("../main.ts", import.meta.url)), ...Deno.args],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
// The watcher ends on SIGINT (after main.ts's graceful shutdown); on SIGTERM it only restarts main.ts
// and waits for a file change. So either signal is passed on as SIGINT, and the task ends with it.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    try {
      child.kill("SIGINT");
    } catch { /* already gone */ }
  });
}
const { code } = await child.status;
Deno.exit(code);

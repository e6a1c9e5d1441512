/** The arguments of `deno task start` (main.ts) and `deno task dev` (tasks/dev.ts): none but --help. */
import { z } from "zod";
import type { TaskSpec } from "./args.ts";
import { configSchema } from "./config.ts";

/** The spec of the task that serves Levelguard, under its task name. */
export function serveTask(name: "start" | "dev"): TaskSpec<z.ZodObject<{ _: z.ZodArray<z.ZodString> }>> {
  const defaults = configSchema.parse({});
  return {
    name,
    summary: (name === "dev" ? "Like deno task start, restarting on file changes. " : "") +
      "Serves Levelguard on PORT. Without DATABASE_URL it runs on an embedded PostgreSQL under DATA_DIR " +
      "and creates demo data on the first start.",
    options: {},
    schema: z.object({ _: z.array(z.string()) }),
    notes: [
      "Configured by environment variables (README, Configuration); defaults:",
      ...Object.entries(defaults).map(([k, v]) => `  ${k}=${Array.isArray(v) ? "" : v ?? ""}`),
      ...Object.keys(configSchema.shape).filter((k) => !(k in defaults)).map((k) => `  ${k} (unset)`),
    ],
  };
}

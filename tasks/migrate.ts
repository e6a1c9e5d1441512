/** `deno task migrate`: applies pending migrations and exits. */
import { z } from "zod";
import { migrate } from "../lib/migrate.ts";
import { runTask } from "./_run.ts";

await runTask(
  {
    name: "migrate",
    summary: "Applies the pending migrations (migrations/*.sql, in order, each once) and exits.",
    options: {},
    schema: z.object({ _: z.array(z.string()) }),
    notes: ["Database: DATABASE_URL, or the embedded one under DATA_DIR (default ./data)."],
  },
  { database: "any", whileServerRuns: "the running server migrates on start" },
  async ({ db, services }) => {
    const applied = await migrate(db.sql, services.migrations);
    console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
  },
);

/** `deno task migrate`: applies pending migrations and exits. */
import { migrate } from "../migrate.ts";
import { runTask } from "./_run.ts";

await runTask("migrate", async ({ db }) => {
  const applied = await migrate(db.sql);
  console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
});

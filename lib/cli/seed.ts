/** `deno task seed --students N [--desync-rate R] [--admin-email E]`: fills an empty database. */
import { parseArgs } from "node:util";
import { z } from "zod";
import { migrate } from "../migrate.ts";
import { seed } from "../seed.ts";
import { UsageError } from "../errors.ts";
import { runTask } from "./_run.ts";

const argsSchema = z.object({
  students: z.coerce.number().int().min(0).max(50_000_000),
  "desync-rate": z.coerce.number().min(0).max(1).default(0),
  "admin-email": z.email().default("admin@staging.example.com"),
});

await runTask("seed", async ({ config, db }) => {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      students: { type: "string", default: "1000" },
      "desync-rate": { type: "string" },
      "admin-email": { type: "string" },
    },
  });
  const parsed = argsSchema.safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`--${issue.path.join(".")}: ${issue.message}`);
  }
  if (!config.SEED_ADMIN_PASSWORD || !config.SEED_STUDENT_PASSWORD) {
    throw new UsageError("set SEED_ADMIN_PASSWORD and SEED_STUDENT_PASSWORD (at least 8 characters each)");
  }
  await migrate(db.sql);
  const started = performance.now();
  const result = await seed(db.sql, {
    students: parsed.data.students,
    desyncRate: parsed.data["desync-rate"],
    adminEmail: parsed.data["admin-email"],
    adminPassword: config.SEED_ADMIN_PASSWORD,
    studentPassword: config.SEED_STUDENT_PASSWORD,
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(
    `seeded ${result.students} students (${result.progressRows} progress/license pairs, ` +
      `${result.desyncedPairs} desynced on purpose) in ${seconds} s; admin ${parsed.data["admin-email"]} ` +
      `(id ${result.adminId}), instructor ${result.instructorEmail} (id ${result.instructorId})`,
  );
});

/** `deno task seed --students N [--desync-rate R] [--admin-email E]`: fills an empty database. */
import { z } from "zod";
import { UsageError } from "../lib/errors.ts";
import { migrate } from "../lib/migrate.ts";
import { seed } from "../lib/seed.ts";
import { progressLine } from "./_progress.ts";
import { runTask } from "./_run.ts";

await runTask(
  {
    name: "seed",
    summary: "Fills an empty database with staging data: students 1..N with progress, licenses and ledger, " +
      "an admin and an instructor.",
    options: {
      students: { type: "string", value: "N", help: "how many students (required; 0 to 50,000,000)" },
      "desync-rate": {
        type: "string",
        value: "R",
        help: "fraction 0..1 of progress/license pairs broken on purpose (default 0)",
      },
      "admin-email": {
        type: "string",
        value: "E",
        help: "the admin's email (default admin@staging.example.com)",
      },
    },
    schema: z.object({
      _: z.array(z.string()),
      students: z.string({ error: "is required (how many students to create)" })
        .transform(Number).pipe(z.int("must be a whole number").min(0).max(50_000_000)),
      "desync-rate": z.coerce.number().min(0).max(1).default(0),
      "admin-email": z.email().default("admin@staging.example.com"),
    }),
    notes: [
      "environment: SEED_ADMIN_PASSWORD (admin and instructor) and SEED_STUDENT_PASSWORD (every student),",
      "at least 8 characters each; DATABASE_URL, or the embedded database under DATA_DIR.",
      "example: SEED_ADMIN_PASSWORD=... SEED_STUDENT_PASSWORD=... deno task seed --students 10000 --desync-rate 0.01",
    ],
  },
  { database: "any", whileServerRuns: "the embedded server seeds demo data on its first start" },
  async ({ args, config, db, services }) => {
    if (!config.SEED_ADMIN_PASSWORD || !config.SEED_STUDENT_PASSWORD) {
      throw new UsageError("set SEED_ADMIN_PASSWORD and SEED_STUDENT_PASSWORD (at least 8 characters each)");
    }
    await migrate(db.sql, services.migrations);
    console.error(
      `seed: ${args.students.toLocaleString("en")} students, desync rate ${args["desync-rate"]}, ` +
        `admin ${args["admin-email"]}`,
    );
    const started = performance.now();
    const progress = progressLine("students");
    const result = await seed(db.sql, {
      students: args.students,
      desyncRate: args["desync-rate"],
      adminEmail: args["admin-email"],
      adminPassword: config.SEED_ADMIN_PASSWORD,
      studentPassword: config.SEED_STUDENT_PASSWORD,
    }, progress);
    progress.finish();
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    console.log(
      `seeded ${result.students} students (${result.progressRows} progress/license pairs, ` +
        `${result.desyncedPairs} desynced on purpose) in ${seconds} s; admin ${args["admin-email"]} ` +
        `(id ${result.adminId}), instructor ${result.instructorEmail} (id ${result.instructorId})`,
    );
  },
);

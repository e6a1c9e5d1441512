/** `deno task admin:create --email E [--name N]`: creates an admin (password prompted, or SEED_ADMIN_PASSWORD). */
import { z } from "zod";
import { createAdmin } from "../lib/admin_create.ts";
import { newPassword } from "./_secret.ts";
import { runTask } from "./_run.ts";

await runTask(
  {
    name: "admin:create",
    summary:
      "Creates an admin account (the first one on a database without seed data) and prints nothing secret.",
    options: {
      email: {
        type: "string",
        value: "E",
        help: "the new admin's email (required; unique regardless of case)",
      },
      name: { type: "string", value: "N", help: "the new admin's full name (default: none)" },
    },
    schema: z.object({
      _: z.array(z.string()),
      email: z.email({ error: (issue) => issue.input === undefined ? "is required" : undefined }).max(254),
      name: z.string().trim().max(200).optional(),
    }),
    notes: [
      "The password is SEED_ADMIN_PASSWORD when set; otherwise it is asked for twice (not echoed on a",
      "terminal), or read as one line from stdin. At least 8 characters. Never give it as an argument.",
    ],
  },
  { database: "migrated", whileServerRuns: "" },
  async ({ args, config, db }) => {
    const password = await newPassword(config.SEED_ADMIN_PASSWORD);
    const id = await createAdmin(db.sql, { email: args.email, fullName: args.name, password });
    console.log(`admin:create: admin ${args.email} created (id ${id}); sign in at /admin/login`);
  },
);

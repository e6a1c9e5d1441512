/** `deno task admin:password [--email E]`: sets an admin's password (prompted, or SEED_ADMIN_PASSWORD). */
import { z } from "zod";
import { setAdminPassword } from "../lib/admin_password.ts";
import { newPassword } from "./_secret.ts";
import { runTask } from "./_run.ts";

await runTask(
  {
    name: "admin:password",
    summary: "Sets a new password for an admin account and prints nothing secret.",
    options: {
      email: { type: "string", value: "E", help: "the admin's email (default: the only admin there is)" },
    },
    schema: z.object({ _: z.array(z.string()), email: z.email().optional() }),
    notes: [
      "The password is SEED_ADMIN_PASSWORD when set; otherwise it is asked for (not echoed on a terminal),",
      "or read as one line from stdin. At least 8 characters.",
      "The account's API tokens and dashboard sessions end at once, on every instance.",
    ],
  },
  { database: "migrated", whileServerRuns: "" },
  async ({ args, config, db }) => {
    const password = await newPassword(config.SEED_ADMIN_PASSWORD);
    const email = await setAdminPassword(db.sql, password, args.email);
    console.log(`admin:password: the password of ${email} was changed`);
  },
);

/** `deno task admin:password [--email E]`: sets an admin's password (prompted, or SEED_ADMIN_PASSWORD). */
import { z } from "zod";
import { setAdminPassword } from "../admin_password.ts";
import { UsageError } from "../errors.ts";
import { runTask } from "./_run.ts";

/** Reads a line from stdin; on a terminal without echo. */
async function readSecret(prompt: string): Promise<string> {
  const stdin = Deno.stdin;
  const tty = stdin.isTerminal();
  if (tty) {
    Deno.stderr.writeSync(new TextEncoder().encode(prompt));
    stdin.setRaw(true);
  }
  const bytes: number[] = [];
  const buf = new Uint8Array(1);
  try {
    for (;;) {
      const n = await stdin.read(buf);
      if (n === null) break;
      const ch = buf[0];
      if (ch === 3) throw new UsageError("cancelled"); // Ctrl-C in raw mode
      if (ch === 10 || ch === 13) break;
      if (ch === 127 || ch === 8) bytes.pop();
      else bytes.push(ch);
    }
  } finally {
    if (tty) {
      stdin.setRaw(false);
      Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

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
    ],
  },
  { database: "migrated", whileServerRuns: "" },
  async ({ args, config, db }) => {
    let password = config.SEED_ADMIN_PASSWORD;
    if (!password) {
      password = await readSecret("new password: ");
      if (Deno.stdin.isTerminal() && password !== await readSecret("again: ")) {
        throw new UsageError("the two passwords differ; nothing changed");
      }
    }
    const email = await setAdminPassword(db.sql, password, args.email);
    console.log(`admin:password: the password of ${email} was changed`);
  },
);

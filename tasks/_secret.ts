/** A new password for a task: SEED_ADMIN_PASSWORD, or asked for (never an argument, never echoed). */
import { UsageError } from "../lib/errors.ts";

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

/**
 * The password a task sets: `fromEnv` (SEED_ADMIN_PASSWORD) when given; else
 * asked for twice on a terminal (not echoed), or read as one line from stdin.
 */
export async function newPassword(fromEnv: string | undefined): Promise<string> {
  if (fromEnv) return fromEnv;
  const password = await readSecret("new password: ");
  if (Deno.stdin.isTerminal() && password !== await readSecret("again: ")) {
    throw new UsageError("the two passwords differ; nothing changed");
  }
  return password;
}

/** The JWT signing key: `JWT_SECRET`, or one generated once and kept under `DATA_DIR`. */
import { join } from "node:path";
import type { Config } from "./config.ts";
import { log } from "./log.ts";
import { randomSecret } from "./secret_strength.ts";

/** Returns the HS256 key bytes, creating `DATA_DIR/jwt_secret` (mode 0600) when needed. */
export async function loadTokenKey(
  config: Pick<Config, "JWT_SECRET" | "DATA_DIR" | "DATABASE_URL">,
): Promise<Uint8Array> {
  if (config.JWT_SECRET) return new TextEncoder().encode(config.JWT_SECRET);
  const path = join(config.DATA_DIR, "jwt_secret");
  try {
    return new TextEncoder().encode((await Deno.readTextFile(path)).trim());
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (config.DATABASE_URL) {
    log(
      "warn",
      "JWT_SECRET is not set: using a key generated under DATA_DIR; set JWT_SECRET when several instances share a database",
    );
  }
  const secret = randomSecret();
  await Deno.mkdir(config.DATA_DIR, { recursive: true });
  await Deno.writeTextFile(path, secret + "\n", { mode: 0o600, createNew: true }).catch((err) => {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  });
  return new TextEncoder().encode((await Deno.readTextFile(path)).trim());
}

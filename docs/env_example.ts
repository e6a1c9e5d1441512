/** ops/env.example, built from the configuration schema and its one-line docs (lib/config.ts). */
import { CONFIG_DOCS, configSchema } from "../lib/config.ts";

/** Variables whose values are secrets: shown empty, never with an example value. */
const SECRET = /SECRET|_PASSWORD$|TOKEN|WEBHOOK|DATABASE_(\w+_)?URL|STAGING_\w+_URL/;

/** Defaults computed on the machine that runs it: described, not written down. */
const PER_MACHINE: Record<string, string> = {
  PASSWORD_HASH_CONCURRENCY: "default: CPU cores",
};

/** The text of ops/env.example. */
export function envExample(): string {
  const defaults = configSchema.parse({}) as Record<string, unknown>;
  const lines = [
    "# Levelguard's configuration: every variable, its default and what it does.",
    "# Copy it to the environment file of the service (ops/systemd/levelguard.service reads",
    "# /etc/levelguard/levelguard.env), uncomment what you change. Keep the file 0640 root:levelguard.",
    "# The unit itself sets DATA_DIR, LOG_DIR, HOST, PORT and TRUST_PROXY (its permissions name those",
    "# directories, and it listens behind nginx): settings in this file override it, so leave those alone.",
    "# Generated from lib/config.ts by `deno task docs:env`; a test fails when it is stale.",
  ];
  for (const [name, doc] of Object.entries(CONFIG_DOCS)) {
    const value = defaults[name];
    const shown = value === undefined
      ? ""
      : Array.isArray(value)
      ? value.map(String).join(",")
      : typeof value === "boolean"
      ? (value ? "1" : "0")
      : String(value);
    const note = PER_MACHINE[name]
      ? ` (${PER_MACHINE[name]})`
      : value === undefined
      ? (SECRET.test(name) ? " (secret; unset by default)" : " (unset by default)")
      : "";
    const example = SECRET.test(name) || PER_MACHINE[name] ? "" : shown;
    lines.push("", `# ${doc}${note}`, `#${name}=${example}`);
  }
  return lines.join("\n") + "\n";
}

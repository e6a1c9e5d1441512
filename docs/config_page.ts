/** docs/configuration.md, built from the configuration schema and its one-line docs (lib/config.ts). */
import { CONFIG_DOCS, configSchema } from "../lib/config.ts";

/** Defaults that are not a fixed value: described instead (the machine's cores, a generated key). */
const DESCRIBED_DEFAULTS: Record<string, string> = {
  PASSWORD_HASH_CONCURRENCY: "CPU cores",
  JWT_SECRET: "generated once into `DATA_DIR/jwt_secret`",
};

/** What stands above the table; wrapped at 110 columns, as `deno fmt` would leave it. */
const INTRO = [
  "# Configuration",
  "",
  "Every environment variable Levelguard reads, its default and what it does. Back to the [README](../README.md).",
  "",
  "This page is generated from `lib/config.ts` (`configSchema` and `CONFIG_DOCS`) by `deno task docs:env`, which",
  "writes [`ops/env.example`](../ops/env.example) too; a test fails when either is stale, so edit `CONFIG_DOCS`,",
  "not this page.",
  "",
  "- The service and every task parse the environment once, with zod. A bad value stops start-up with one line",
  "  naming the variable (secret values are never echoed: keys, passwords, tokens, database and webhook URLs):",
  "",
  "  ```",
  '  levelguard: invalid configuration: DB_POOL_MAX Invalid input: expected number, received NaN (got "lots")',
  "  ```",
  "",
  "- An empty value counts as unset.",
  "- `DATABASE_REPLICA_URL` and `DATABASE_DIRECT_URL` need `DATABASE_URL`, and `DATABASE_DIRECT_URL` is only for",
  "  `DB_PREPARE=0` (a `DATABASE_URL` through PgBouncer): set otherwise, start-up stops and says so.",
  "- `deno task start --help` lists every variable with its default. [`ops/env.example`](../ops/env.example) is",
  "  the same list as an environment file for the systemd unit, which sets `DATA_DIR`, `LOG_DIR`, `HOST`, `PORT`",
  "  and `TRUST_PROXY` itself.",
];

/** A value as a table cell shows it: code, with a pipe escaped so it does not end the cell. */
function code(value: string): string {
  return value === "" ? "(empty)" : "`" + value.replaceAll("|", "\\|") + "`";
}

/** A cell's text with pipes escaped, outside and inside code spans alike. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}

/** The default as the page shows it. */
function defaultOf(name: string, value: unknown): string {
  if (DESCRIBED_DEFAULTS[name]) return DESCRIBED_DEFAULTS[name];
  if (value === undefined) return "unset";
  if (Array.isArray(value)) return value.length ? code(value.map(String).join(",")) : "unset";
  if (typeof value === "boolean") return code(value ? "1" : "0");
  return code(String(value));
}

/** A Markdown table padded the way `deno fmt` pads it (so the generated page passes `deno fmt --check`). */
function table(header: string[], rows: string[][]): string[] {
  const width = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(3, width(h), ...rows.map((r) => width(r[i]))));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c + " ".repeat(widths[i] - width(c))).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

/** The text of docs/configuration.md. */
export function configPage(): string {
  const defaults = configSchema.parse({}) as Record<string, unknown>;
  const rows = Object.entries(CONFIG_DOCS).map(([name, doc]) => [
    "`" + name + "`",
    defaultOf(name, defaults[name]),
    cell(doc),
  ]);
  return [...INTRO, "", ...table(["variable", "default", "meaning"], rows)].join("\n") + "\n";
}

/** Configuration: every environment variable, parsed once with zod. */
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { postgresUrlProblem } from "./postgres_url.ts";
import { parseCidr } from "./rate_limit/ip.ts";
import { secretProblem } from "./secret_strength.ts";

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const flag = z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true");

// Parsed here, once: a bad entry (`300.1.1.1`, `10.0.0.0/33`) stops startup naming it.
const cidrList = z.string().transform((raw, ctx) => {
  const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
  return items.map((item) => {
    const cidr = parseCidr(item);
    if (!cidr) ctx.addIssue({ code: "custom", message: `"${item}" is not an IP address or CIDR` });
    return { text: item, ...cidr ?? { base: 0n, prefix: 0 } };
  });
});

// TRUST_PROXY: the proxies whose forwarded headers are believed. `1`/`true` (believe any peer)
// is refused: behind it, anyone could name their own address and wear out another's budget.
const ANY_CLIENT =
  "would believe any client; list your proxies' addresses instead, e.g. TRUST_PROXY=127.0.0.1/32";
const proxyList = z.string()
  .superRefine((v, ctx) => {
    if (/^\s*(1|true)\s*$/i.test(v)) ctx.addIssue({ code: "custom", message: `"${v.trim()}" ${ANY_CLIENT}` });
  })
  .transform((v) => /^\s*(0|false)\s*$/i.test(v) ? "" : v)
  .pipe(cidrList)
  .superRefine((list, ctx) => {
    // A /0 (IPv4's is /96 in the shared space) is "1" written another way.
    const everyone = list.find((cidr) => cidr.prefix === 0 || cidr.prefix === 96);
    if (everyone) ctx.addIssue({ code: "custom", message: `"${everyone.text}" ${ANY_CLIENT}` });
  });

/**
 * A postgres:// URL, checked here as the URL parser and postgres.js would read it, so that neither
 * ever sees a malformed one: the message says what is wrong and never repeats the value.
 */
export const postgresUrl = z.string().superRefine((value, ctx) => {
  const problem = postgresUrlProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

const optionalUrl = z.string().trim().transform((v) => v === "" ? undefined : v).pipe(postgresUrl.optional());

// Comma-separated http(s) URLs; a typo stops startup naming the entry (never its secret path).
const httpUrlList = z.string().transform((raw, ctx) => {
  const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
  return items.flatMap((item, i) => {
    if (URL.canParse(item) && /^https?:$/.test(new URL(item).protocol)) return [new URL(item)];
    ctx.addIssue({ code: "custom", message: `entry ${i + 1} is not an http(s) URL` });
    return [];
  });
});

const httpUrl = z.string().trim().refine(
  (v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol),
  "must be an http(s) URL",
).transform((v) => v.replace(/\/+$/, ""));

/** The schema of the environment; its keys are the variable names. */
export const configSchema = z.object({
  PORT: intFrom(0, 65535).default(8000),
  HOST: z.string().min(1).default("0.0.0.0"),
  DATABASE_URL: optionalUrl.optional(),
  // Through PgBouncer in transaction pooling: no prepared statements, no session state.
  DB_PREPARE: flag.default(true),
  DATABASE_DIRECT_URL: optionalUrl.optional(),
  DATABASE_REPLICA_URL: optionalUrl.optional(),
  REPLICA_MAX_LAG_S: intFrom(0, 86_400).default(30),
  DB_POOL_MAX: intFrom(1, 500).default(10),
  DB_CONNECT_TIMEOUT_S: intFrom(1, 300).default(10),
  DB_STATEMENT_TIMEOUT_MS: intFrom(0, 3_600_000).default(30_000),
  DATA_DIR: z.string().min(1).default("./data"),
  LOG_DIR: z.string().min(1).default("./logs"),
  JWT_SECRET: z.string().min(32, "must be at least 32 characters; make one with: openssl rand -base64 48")
    .superRefine((value, ctx) => {
      const problem = secretProblem(value);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }).optional(),
  JWT_TTL_SECONDS: intFrom(30, 86_400).default(1800),
  RATE_LIMIT_PER_MINUTE: intFrom(0, 1_000_000).default(100),
  RATE_LIMIT_EXEMPT: cidrList.default([]),
  RATE_LIMIT_STORE: z.enum(["memory", "postgres"]).default("memory"),
  TRUST_PROXY: proxyList.default([]),
  SCAN_CRON: z.string().regex(
    /^(\S+\s+){4}\S+$/,
    "must be a 5-field cron expression",
  ).default("*/5 * * * *"),
  SCAN_ENABLED: flag.default(true),
  INTEGRITY_HISTORY_DAYS: intFrom(1, 3650).default(30),
  SEED_ADMIN_PASSWORD: z.string().min(8, "must be at least 8 characters").optional(),
  SEED_STUDENT_PASSWORD: z.string().min(8, "must be at least 8 characters").optional(),
  LOG_REQUESTS: flag.default(true),
  SHUTDOWN_GRACE_S: intFrom(0, 3600).default(10),
  // Bodies are at most 16 KiB: ~1.3 s at 100 kbit/s; 10 s leaves a slow mobile link room.
  REQUEST_BODY_TIMEOUT_MS: intFrom(100, 600_000).default(10_000),
  DASHBOARD_REFRESH_SECONDS: intFrom(1, 3600).default(30),
  SESSION_TTL_SECONDS: intFrom(60, 7 * 86_400).default(8 * 3600),
  // The most derivations at once: every core while the event loop is idle, down to one while
  // requests keep it busy (lib/adaptive_limit.ts).
  PASSWORD_HASH_CONCURRENCY: intFrom(1, 256).default(Math.max(1, navigator.hardwareConcurrency)),
  // As long as a client typically waits for an answer: a login that waits beats one that fails.
  PASSWORD_QUEUE_MAX_WAIT_MS: intFrom(100, 120_000).default(30_000),
  // Successful password checks kept per account and epoch (lib/verified_passwords.ts); 0: none.
  LOGIN_CACHE_TTL_SECONDS: intFrom(0, 3600).default(300),
  // Unset: /metrics answers loopback clients only.
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  ALERT_WEBHOOK_URLS: httpUrlList.default([]),
  // Where people reach the service (links in notifications), e.g. https://levelguard.example.com
  PUBLIC_URL: httpUrl.optional(),
  // staging:export: the password every copied user gets (unless --keep-password-hashes).
  STAGING_PASSWORD: z.string().min(8, "must be at least 8 characters").optional(),
  // staging:export's databases, from the environment: a password on a command line is seen by all.
  STAGING_FROM_URL: optionalUrl.optional(),
  STAGING_TO_URL: optionalUrl.optional(),
  // Canary: the minimum soak of a rollout step before `canary advance`, and automatic rollback.
  CANARY_STEP_HOURS: z.coerce.number().min(0).max(24 * 90).default(24),
  CANARY_AUTO_ROLLBACK: flag.default(false),
});

/** Parsed configuration. */
export type Config = z.infer<typeof configSchema>;

/**
 * One line per variable: what it does (ops/env.example and `deno task start
 * --help` are built from this; the type makes a new variable without a line
 * a compile error).
 */
export const CONFIG_DOCS: { readonly [K in keyof typeof configSchema.shape]: string } = {
  PORT: "HTTP port",
  HOST: "listen address",
  DATABASE_URL:
    "PostgreSQL 14+ (postgres://user:password@host:5432/db); unset = embedded PGlite under DATA_DIR",
  DB_PREPARE:
    "0: no prepared statements and no session state (DATABASE_URL is PgBouncer in transaction pooling)",
  DATABASE_DIRECT_URL:
    "a direct connection (not through the pooler) for LISTEN and the scan lock; unset: polling",
  DATABASE_REPLICA_URL:
    "a streaming replica for heavy reads (scan, violations, history, CSV); unset: the primary",
  REPLICA_MAX_LAG_S: "seconds of replica lag beyond which reads go back to the primary",
  DB_POOL_MAX: "connections in the pool (the embedded database always uses 1)",
  DB_CONNECT_TIMEOUT_S: "seconds a database has to answer as PostgreSQL (connection and handshake)",
  DB_STATEMENT_TIMEOUT_MS: "statement_timeout of every connection, ms (0 = none)",
  DATA_DIR: "embedded database and the generated JWT key",
  LOG_DIR: "integrity checks' JSON log files",
  JWT_SECRET:
    "HS256 key, 32+ random characters (openssl rand -base64 48); the same on every instance sharing a database",
  JWT_TTL_SECONDS: "access token lifetime, seconds",
  RATE_LIMIT_PER_MINUTE: "requests per client IP per minute; 0 turns limiting off",
  RATE_LIMIT_EXEMPT: "comma-separated IPs/CIDRs never limited (load generators)",
  RATE_LIMIT_STORE: "memory (per process) or postgres (one budget across instances)",
  TRUST_PROXY:
    "comma-separated proxy IPs/CIDRs whose X-Forwarded-For/-Proto/-Host and X-Request-Id are believed; unset = none",
  SCAN_CRON: "integrity scan schedule, 5-field cron (UTC)",
  SCAN_ENABLED: "0 disables the scheduled scan in this instance",
  INTEGRITY_HISTORY_DAYS: "days of check history kept",
  SEED_ADMIN_PASSWORD:
    "seed, admin:create, admin:password: the admin's password (else asked for); embedded first start: the demo admin's (random if unset)",
  SEED_STUDENT_PASSWORD: "seed: the students' shared password",
  LOG_REQUESTS: "one JSON log line per request",
  SHUTDOWN_GRACE_S:
    "on SIGTERM/SIGINT, seconds in-flight requests and a running check get to finish; then 503 + Retry-After",
  REQUEST_BODY_TIMEOUT_MS: "ms a client gets to send a request's whole body (JSON or form); slower is 408",
  DASHBOARD_REFRESH_SECONDS: "the dashboard's refresh timer, besides its live updates",
  SESSION_TTL_SECONDS: "how long a dashboard sign-in lasts, seconds",
  PASSWORD_HASH_CONCURRENCY:
    "most password derivations at once (all while the event loop is idle, down to 1 while it is busy); the rest queue",
  PASSWORD_QUEUE_MAX_WAIT_MS: "a sign-in that would wait longer in the queue gets 503 + Retry-After",
  LOGIN_CACHE_TTL_SECONDS:
    "seconds a successful password check is kept per account (until the account changes); 0 = never",
  METRICS_TOKEN: "bearer token GET /metrics requires (16+ characters); unset = loopback clients only",
  ALERT_WEBHOOK_URLS: "comma-separated http(s) URLs that get a JSON POST when the health status changes",
  PUBLIC_URL: "where people reach the service (https://...), for links in notifications",
  STAGING_PASSWORD: "staging:export: the password every copied user gets (unless --keep-password-hashes)",
  STAGING_FROM_URL: "staging:export: the production database it reads (default DATABASE_URL)",
  STAGING_TO_URL: "staging:export: the migrated, empty staging database it fills",
  CANARY_STEP_HOURS: "minimum soak of a rollout step before `deno task canary advance`, hours",
  CANARY_AUTO_ROLLBACK: "1: a rollback verdict after a check sets the rollout to 0 and notifies",
};

/** Parses an environment (default: the process's) or throws one ConfigError. */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const known = Object.fromEntries(
    Object.keys(configSchema.shape).map((k) => [k, env[k] === "" ? undefined : env[k]]),
  );
  const result = configSchema.safeParse(known);
  if (result.success) return checkTogether(result.data);
  const issue = result.error.issues[0];
  const name = String(issue.path[0] ?? "environment");
  // Database URLs may carry a password, webhook URLs a secret path.
  const secret = /SECRET|PASSWORD|DATABASE_(\w+_)?URL|STAGING_\w+_URL|TOKEN|WEBHOOK/.test(name);
  const got = secret ? "" : ` (got "${env[name]}")`;
  throw new ConfigError(`invalid configuration: ${name} ${issue.message}${got}`);
}

/** Settings that only mean something with another: set alone, they would be silently ignored. */
function checkTogether(config: Config): Config {
  for (const name of ["DATABASE_REPLICA_URL", "DATABASE_DIRECT_URL"] as const) {
    if (config[name] && !config.DATABASE_URL) {
      throw new ConfigError(
        `invalid configuration: ${name} needs DATABASE_URL (the embedded database has no replica or pooler)`,
      );
    }
  }
  if (config.DATABASE_DIRECT_URL && config.DB_PREPARE) {
    throw new ConfigError(
      "invalid configuration: DATABASE_DIRECT_URL is for DB_PREPARE=0 (DATABASE_URL through PgBouncer); " +
        "without a pooler DATABASE_URL is direct already",
    );
  }
  return config;
}

/**
 * `deno task staging:export [--limit N] [--keep-password-hashes]`: the anonymized staging copy,
 * from STAGING_FROM_URL (or DATABASE_URL) to STAGING_TO_URL. Connection strings come from the
 * environment: `deno task` echoes its command line on stderr, and arguments are in the shell's
 * history and every user's process list, so `--from`/`--to` take only URLs without a password.
 * It opens no embedded database, parses its arguments like every task and handles failures as
 * runTask does: one line, exit 1, never a stack trace.
 */
import { z } from "zod";
import { loadConfig, postgresUrl } from "../lib/config.ts";
import { describe } from "../lib/db.ts";
import { isOneLine, UsageError } from "../lib/errors.ts";
import { pgpassPassword, pgpassTarget } from "../lib/pgpass.ts";
import { hasPassword, redactUrls } from "../lib/postgres_url.ts";
import { exportStaging, type StagingTable } from "../lib/staging_export.ts";
import { argsOrExit, type TaskSpec, usage } from "../lib/args.ts";
import { progressLine } from "./_progress.ts";

const NAME = "staging:export";

const urlArgument = (variable: string) =>
  postgresUrl.refine(
    (url) => !hasPassword(url),
    "carries a password, which would be in the shell history, the process list and deno task's echo " +
      `of the command; set ${variable} instead, or leave it out of the URL and use PGPASSWORD or ~/.pgpass`,
  ).optional();

const schema = z.object({
  _: z.array(z.string()),
  from: urlArgument("STAGING_FROM_URL"),
  to: urlArgument("STAGING_TO_URL"),
  limit: z.string().transform(Number).pipe(z.int("must be a whole number").min(0)).optional(),
  "keep-password-hashes": z.boolean().default(false),
});

const spec: TaskSpec<typeof schema> = {
  name: NAME,
  summary: "Copies active users with their progress, licenses and XP ledger from production into a " +
    "migrated, empty staging database, anonymized on the way.",
  options: {
    from: {
      type: "string",
      value: "URL",
      help: "the production database, without a password (default: STAGING_FROM_URL, else DATABASE_URL)",
    },
    to: {
      type: "string",
      value: "URL",
      help: "the staging database, without a password: migrated and empty (default: STAGING_TO_URL)",
    },
    limit: {
      type: "string",
      value: "N",
      help: "only the N most recently active students (default all); active staff are always copied",
    },
    "keep-password-hashes": {
      type: "boolean",
      help: "keep production's password hashes (default: every user gets STAGING_PASSWORD)",
    },
  },
  schema,
  notes: [
    "Copies active users, their specialization_progress, user_licenses and xp_events, with their ids,",
    "levels and timestamps unchanged (so a desync found in production reproduces in staging).",
    "Anonymized in the source's SELECT: email user_<id>@staging.example.com, full name Staging User <id>,",
    "password hashes replaced by STAGING_PASSWORD's; ledger idempotency keys dropped, request ids kept only",
    "when server-generated (UUIDs); an actor who is not copied (inactive staff) becomes NULL.",
    "Not copied: inactive users, idempotency keys, audit log, integrity checks, sessions, settings,",
    "rate-limit counters, request stats. New rows in staging get ids above every production id.",
    "--limit: a student's last activity is the latest of users.updated_at, their newest xp_events.created_at",
    "and their newest progress updated_at (ties: the higher id); active staff (ADMIN, INSTRUCTOR) are",
    "copied in any case, so staging has an admin.",
    "Refuses (exit 1, nothing written): the same database twice, a target with rows in any table",
    "besides what deno task migrate creates (settings, specializations and levels), either side not",
    "migrated to this checkout's migrations, or a --to role that does not own the tables (connect as",
    "the role that ran deno task migrate). One target transaction: a failure leaves the target empty;",
    "the source is read in read-only transactions, the copy in one snapshot. Either URL may go through",
    "PgBouncer in transaction pooling.",
    "Connection strings with a password come from the environment only: STAGING_FROM_URL (default",
    "DATABASE_URL) and STAGING_TO_URL. A --from/--to URL with a password is refused (exit 2): the command",
    "line is echoed by deno task, kept in the shell history and shown in the process list. Without a",
    "password in the URL, PGPASSWORD or ~/.pgpass (PGPASSFILE; mode 0600) gives it, as for psql.",
    "environment: STAGING_PASSWORD (at least 8 characters) unless --keep-password-hashes.",
    "example: export STAGING_FROM_URL=postgres://ro:...@prod/levelguard STAGING_TO_URL=postgres://lg:...@staging/levelguard",
    "         STAGING_PASSWORD=... deno task staging:export --limit 10000",
  ],
};

const args = argsOrExit(spec);

/** A URL without a password, completed from the password file when it has a line for it. */
async function filePassword(url: string): Promise<string | undefined> {
  if (hasPassword(url) || Deno.env.get("PGPASSWORD")) return undefined;
  return (await pgpassPassword(pgpassTarget(url))) ?? undefined;
}

let code = 0;
let progress: ReturnType<typeof progressLine> | undefined;
try {
  const config = loadConfig();
  const keep = args["keep-password-hashes"];
  if (!keep && !config.STAGING_PASSWORD) {
    throw new UsageError(
      "set STAGING_PASSWORD (at least 8 characters) for the copied users, or pass --keep-password-hashes",
    );
  }
  const from = args.from ?? config.STAGING_FROM_URL ?? config.DATABASE_URL;
  const to = args.to ?? config.STAGING_TO_URL;
  if (!from || !to) {
    const missing = !from ? "source: set STAGING_FROM_URL (or DATABASE_URL)" : "target: set STAGING_TO_URL";
    throw new UsageError(`no ${missing}, or pass --${!from ? "from" : "to"} URL without a password`);
  }
  let current: StagingTable | undefined;
  const result = await exportStaging({
    from,
    to,
    passwords: { from: await filePassword(from), to: await filePassword(to) },
    limit: args.limit,
    keepPasswordHashes: keep,
    stagingPassword: config.STAGING_PASSWORD,
    connectTimeoutS: config.DB_CONNECT_TIMEOUT_S,
    onProgress(table, done, total) {
      if (table !== current) {
        progress?.finish();
        progress = progressLine(`${table} rows`);
        current = table;
      }
      progress!(done, total);
    },
  });
  progress?.finish();
  const n = (x: number) => x.toLocaleString("en");
  console.log(
    `copied ${n(result.students + result.staff)} users (${n(result.students)} students, ${
      n(result.staff)
    } staff), ` +
      `${n(result.progressRows)} pairs, ${n(result.licenses)} licenses, ${
        n(result.ledgerRows)
      } ledger rows ` +
      `in ${result.seconds.toFixed(2)} s; password hashes ${
        result.passwordsReplaced ? "replaced by STAGING_PASSWORD's" : "kept"
      }${result.analyzed ? "" : " (ANALYZE failed: autovacuum will catch up)"}`,
  );
} catch (err) {
  progress?.finish();
  code = 1;
  if (err instanceof UsageError && err.message.startsWith("no ")) {
    console.error(`${NAME}: ${err.message}\n${usage(spec)}`);
    code = 2;
  } else {
    const message = isOneLine(err)
      ? err.message
      : `failed, nothing was written to the target: ${describe(err).split("\n")[0]}`;
    console.error(`${NAME}: ${redactUrls(message)}`);
  }
}
Deno.exit(code);

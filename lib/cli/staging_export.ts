/**
 * `deno task staging:export --from URL --to URL [--limit N] [--keep-password-hashes]`:
 * the anonymized staging copy. It works on the two URLs only (no DATABASE_URL,
 * no embedded database), so it parses its arguments like every task and
 * handles failures as runTask does: one line, exit 1, never a stack trace.
 */
import { z } from "zod";
import { loadConfig } from "../config.ts";
import { describe } from "../db.ts";
import { isOneLine, UsageError } from "../errors.ts";
import { exportStaging, type StagingTable } from "../staging_export.ts";
import { argsOrExit } from "../args.ts";
import { progressLine } from "./_progress.ts";

const NAME = "staging:export";

const postgresUrl = (side: string) =>
  z.string({ error: `is required (the ${side} database's URL)` })
    .regex(/^postgres(ql)?:\/\//, "must start with postgres:// or postgresql://");

const args = argsOrExit({
  name: NAME,
  summary: "Copies active users with their progress, licenses and XP ledger from production into a " +
    "migrated, empty staging database, anonymized on the way.",
  options: {
    from: { type: "string", value: "URL", help: "the production database (only read, in one snapshot)" },
    to: { type: "string", value: "URL", help: "the staging database: migrated and empty" },
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
  schema: z.object({
    _: z.array(z.string()),
    from: postgresUrl("production"),
    to: postgresUrl("staging"),
    limit: z.string().transform(Number).pipe(z.int("must be a whole number").min(0)).optional(),
    "keep-password-hashes": z.boolean().default(false),
  }),
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
    "environment: STAGING_PASSWORD (at least 8 characters) unless --keep-password-hashes.",
    "example: STAGING_PASSWORD=... deno task staging:export --from postgres://ro@prod/levelguard \\",
    "           --to postgres://lg@staging/levelguard --limit 10000",
  ],
});

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
  let current: StagingTable | undefined;
  const result = await exportStaging({
    from: args.from,
    to: args.to,
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
  const message = isOneLine(err)
    ? err.message
    : `failed, nothing was written to the target: ${describe(err).split("\n")[0]}`;
  console.error(`${NAME}: ${message}`);
}
Deno.exit(code);

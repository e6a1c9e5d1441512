/**
 * Shared start-up for command-line tasks: arguments (`--help`, exit 2 on bad
 * ones), configuration, the embedded database's lock, the database and the
 * process's services; every expected failure is one line.
 */
import type { z } from "zod";
import { type Config, loadConfig } from "../lib/config.ts";
import { lockDataDir } from "../lib/data_dir.ts";
import { type Database, openDatabase } from "../lib/db.ts";
import { isOneLine, UsageError } from "../lib/errors.ts";
import { pendingMigrations } from "../lib/migrate.ts";
import { redactUrls } from "../lib/postgres_url.ts";
import { buildServices, type Services } from "../lib/services.ts";
import { argsOrExit, type TaskSpec, usage } from "../lib/args.ts";

/** How long a task waits, at its end, for notifications under way (they retry with backoff). */
const NOTIFY_WAIT_MS = 10_000;

/** What a task gets. */
export interface TaskContext<T> {
  args: T;
  config: Config;
  db: Database;
  services: Services;
}

/** Options of `runTask`. */
export interface RunOptions {
  /** `migrated`: refuse with "run deno task migrate first" when migrations are pending. */
  database: "any" | "migrated";
  /** With the embedded database in use by the server: what to do instead (e.g. the API call). */
  whileServerRuns?: string;
}

/** LEVELGUARD_DEBUG=1 shows the stack of an unexpected failure (false without env access). */
function debugging(): boolean {
  try {
    return Boolean(Deno.env.get("LEVELGUARD_DEBUG"));
  } catch {
    return false;
  }
}

/** Runs a task; exits with its code (0, 1 for a failure, 2 for bad arguments). */
export async function runTask<S extends z.ZodType>(
  spec: TaskSpec<S>,
  options: RunOptions,
  task: (ctx: TaskContext<z.output<S>>) => Promise<number | void>,
): Promise<never> {
  const args = argsOrExit(spec);
  let db: Database | undefined;
  let services: Services | undefined;
  let release = () => {};
  let code = 0;
  try {
    const config = loadConfig();
    if (!config.DATABASE_URL) {
      const instead = options.whileServerRuns ? `${options.whileServerRuns}, or ` : "";
      release = (await lockDataDir(config.DATA_DIR, `${instead}stop it, or set DATABASE_URL`)).release;
    }
    db = await openDatabase(config);
    services = await buildServices(config, db);
    if (options.database === "migrated") {
      const pending = await pendingMigrations(db.sql, services.migrations);
      if (pending.length) {
        throw new UsageError(
          `the database is not migrated (pending: ${pending.join(", ")}); run deno task migrate first`,
        );
      }
    }
    code = (await task({ args, config, db, services })) ?? 0;
  } catch (err) {
    code = 1;
    if (err instanceof UsageError && err.message.startsWith("--")) {
      console.error(`${spec.name}: ${err.message}\n${usage(spec)}`);
      code = 2;
    } else if (isOneLine(err)) {
      console.error(`${spec.name}: ${err.message}`);
    } else if ((err as { code?: string })?.code === "42P01") {
      // A table is missing: the database was never (fully) migrated.
      console.error(`${spec.name}: ${(err as Error).message}; run deno task migrate first`);
    } else {
      // Unexpected: one line too, as main.ts does (the stack with LEVELGUARD_DEBUG=1). A client
      // quoting a connection string in its error never puts the password in the output.
      const message = String((err as Error)?.message ?? err).split("\n")[0];
      console.error(`${spec.name}: unexpected failure: ${redactUrls(message)}`);
      if (debugging()) console.error(redactUrls(String((err as Error)?.stack ?? err)));
    }
  } finally {
    // A check the task ran may have changed the status (webhooks) or the canary's verdict.
    await services?.autoRollback.settled().catch(() => {});
    await services?.notifier.settled(NOTIFY_WAIT_MS);
    await db?.close().catch(() => {});
    release();
  }
  Deno.exit(code);
}

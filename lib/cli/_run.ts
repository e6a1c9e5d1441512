/** Shared start-up for command-line tasks: config, database, one-line failures. */
import { type Config, ConfigError, loadConfig } from "../config.ts";
import { type Database, DatabaseUnavailable, openDatabase } from "../db.ts";
import { AppError } from "../errors.ts";
import { MigrationTampered } from "../migrate.ts";

/** Errors that are explained in one line, without a stack trace. */
export function isExpected(err: unknown): err is Error {
  return err instanceof ConfigError || err instanceof DatabaseUnavailable ||
    err instanceof MigrationTampered || err instanceof AppError || err instanceof UsageError;
}

/** Bad command-line arguments. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Runs a task with an open database; returns its exit code. */
export async function runTask(
  name: string,
  task: (ctx: { config: Config; db: Database }) => Promise<number | void>,
): Promise<never> {
  let db: Database | undefined;
  let code = 0;
  try {
    const config = loadConfig();
    db = await openDatabase(config);
    code = (await task({ config, db })) ?? 0;
  } catch (err) {
    if (!isExpected(err)) throw err;
    console.error(`${name}: ${err.message}`);
    code = 1;
  } finally {
    await db?.close().catch(() => {});
  }
  Deno.exit(code);
}

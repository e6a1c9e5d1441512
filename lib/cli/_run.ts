/** Shared start-up for command-line tasks: config, database, services, one-line failures. */
import { type Config, loadConfig } from "../config.ts";
import { type Database, openDatabase } from "../db.ts";
import { isOneLine } from "../errors.ts";
import { buildServices, type Services } from "../services.ts";

/** Runs a task with an open database and the process's services; exits with its code. */
export async function runTask(
  name: string,
  task: (ctx: { config: Config; db: Database; services: Services }) => Promise<number | void>,
): Promise<never> {
  let db: Database | undefined;
  let code = 0;
  try {
    const config = loadConfig();
    db = await openDatabase(config);
    const services = await buildServices(config, db.sql);
    code = (await task({ config, db, services })) ?? 0;
  } catch (err) {
    if (!isOneLine(err)) throw err;
    console.error(`${name}: ${err.message}`);
    code = 1;
  } finally {
    await db?.close().catch(() => {});
  }
  Deno.exit(code);
}

/** Levelguard: wires configuration, database, app and schedule. */
import { isExpected } from "./lib/cli/_run.ts";
import { type Config, loadConfig } from "./lib/config.ts";
import { pruneIdempotencyKeys } from "./lib/coupling.ts";
import { type Database, openDatabase } from "./lib/db.ts";
import { ensureDemoData } from "./lib/demo.ts";
import { errorFields, log } from "./lib/log.ts";
import { scheduleIntegrityScan } from "./lib/integrity/schedule.ts";
import { migrate, readMigrations } from "./lib/migrate.ts";
import { loadJwtSecret } from "./lib/secrets.ts";
import { createApp } from "./routes/app.ts";

async function start(config: Config): Promise<Database> {
  const db = await openDatabase(config);
  const migrations = await readMigrations();
  const applied = await migrate(db.sql, migrations);
  if (applied.length) log("info", "migrations applied", { applied });
  if (db.kind === "embedded") {
    const demo = await ensureDemoData(db.sql, {
      adminPassword: config.SEED_ADMIN_PASSWORD,
      studentPassword: config.SEED_STUDENT_PASSWORD,
    });
    if (demo) {
      // Printed once, on the first start only; not written to any file.
      console.log(
        `\nLevelguard demo data created.\n  admin login: ${demo.email}\n  password:    ${demo.password}\n` +
          `  (instructor ${demo.instructorEmail} has the same password)\n`,
      );
    }
  }
  const jwtSecret = await loadJwtSecret(config);
  const app = createApp({ config, sql: db.sql, migrations, jwtSecret });
  const server = Deno.serve({
    port: config.PORT,
    hostname: config.HOST,
    onListen: ({ hostname, port }) =>
      log("info", "listening", { url: `http://${hostname}:${port}`, database: db.kind }),
  }, app.fetch);
  const shutdown = async () => {
    log("info", "shutting down");
    await server.shutdown();
    await db.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);
  return db;
}

let config: Config;
try {
  config = loadConfig();
  const db = await start(config);
  if (config.SCAN_ENABLED) scheduleIntegrityScan(config, db.sql);
  // Idempotency keys are promised for 24 h; hourly pruning keeps them 48 h.
  Deno.cron("levelguard-prune-idempotency-keys", "17 * * * *", async () => {
    const pruned = await pruneIdempotencyKeys(db.sql).catch((err) => {
      log("error", "pruning idempotency keys failed", errorFields(err));
      return 0;
    });
    if (pruned) log("info", "idempotency keys pruned", { pruned });
  });
} catch (err) {
  if (!isExpected(err)) throw err;
  console.error(`levelguard: ${err.message}`);
  Deno.exit(1);
}

/** Levelguard: wires configuration, database, app and schedule. */
import { type Config, loadConfig } from "./lib/config.ts";
import { pruneIdempotencyKeys } from "./lib/coupling.ts";
import { type Database, openDatabase } from "./lib/db.ts";
import { ensureDemoData } from "./lib/demo.ts";
import { isOneLine } from "./lib/errors.ts";
import { scheduleIntegrityScan } from "./lib/integrity/schedule.ts";
import { errorFields, log } from "./lib/log.ts";
import { migrate } from "./lib/migrate.ts";
import { buildServices, type Services } from "./lib/services.ts";
import { loadTokenKey } from "./lib/token_key.ts";
import { createApp } from "./routes/app.ts";
import { rateLimitStore } from "./routes/middleware/rate_limit.ts";

async function start(config: Config): Promise<{ db: Database; services: Services }> {
  const db = await openDatabase(config);
  const services = await buildServices(config, db.sql);
  const applied = await migrate(db.sql, services.migrations);
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
  const app = createApp({
    ...services,
    tokenKey: await loadTokenKey(config),
    rateLimitStore: rateLimitStore(config, db.sql),
  });
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
  return { db, services };
}

try {
  const config = loadConfig();
  const { db, services } = await start(config);
  if (config.SCAN_ENABLED) scheduleIntegrityScan(services.runner, config.SCAN_CRON);
  // Idempotency keys are promised for 24 h; hourly pruning keeps them 48 h.
  Deno.cron("levelguard-prune-idempotency-keys", "17 * * * *", async () => {
    const pruned = await pruneIdempotencyKeys(db.sql).catch((err) => {
      log("error", "pruning idempotency keys failed", errorFields(err));
      return 0;
    });
    if (pruned) log("info", "idempotency keys pruned", { pruned });
  });
} catch (err) {
  if (!isOneLine(err)) throw err;
  console.error(`levelguard: ${err.message}`);
  Deno.exit(1);
}

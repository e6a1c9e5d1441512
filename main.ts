/** Levelguard: wires configuration, database, services, app and schedule; stops gracefully. */
import { argsOrExit } from "./lib/args.ts";
import { serveTask } from "./lib/start_args.ts";
import { loadConfig } from "./lib/config.ts";
import { checkLogDir, type DataDirLock, ensureDataDir, lockDataDir } from "./lib/data_dir.ts";
import { checkPooledTimeout, type Database, openDatabase, type Sql } from "./lib/db.ts";
import { ensureDemoData } from "./lib/demo.ts";
import { isOneLine } from "./lib/errors.ts";
import { scheduleIntegrityScan } from "./lib/integrity/schedule.ts";
import { errorFields, log } from "./lib/log.ts";
import { migrate } from "./lib/migrate.ts";
import { redactUrls } from "./lib/postgres_url.ts";
import { InFlight, listen } from "./lib/serve.ts";
import { pruneExpired } from "./lib/prune.ts";
import { buildServices } from "./lib/services.ts";
import { loadTokenKey } from "./lib/token_key.ts";
import { appDeps, createApp } from "./routes/app.ts";
import { shuttingDown, starting } from "./routes/starting.ts";

/** Where LISTEN can run: a session on the server itself; none through a pooler alone or embedded. */
function listenConnection(db: Database): Sql | null {
  if (db.session) return db.session.direct ? db.session.sql : null;
  return db.kind === "server" ? db.sql : null;
}

/** LEVELGUARD_DEBUG=1 shows the stack of an unexpected start-up failure (false without env access). */
function debugging(): boolean {
  try {
    return Boolean(Deno.env.get("LEVELGUARD_DEBUG"));
  } catch {
    return false;
  }
}

// Under `deno task dev` tasks/dev.ts has checked them already (--watch would not let an exit end it).
argsOrExit(serveTask("start"));

let db: Database | undefined;
let lock: DataDirLock | undefined;
try {
  const config = loadConfig();
  // Bind the port before anything is created, locked, migrated or printed: a port in use ends
  // here, in one line, leaving no DATA_DIR and no embedded database behind (found after migrating,
  // it left 40 MB and took 36 s), and a later start still finds no demo data and prints the
  // credentials then. Until start-up finishes, requests get 503.
  let handler: (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response> =
    starting;
  // Requests still running when a shutdown's grace period ends are answered 503, not dropped.
  const inFlight = new InFlight(shuttingDown);
  const server = listen({
    port: config.PORT,
    hostname: config.HOST,
    onListen: ({ hostname, port }) =>
      log("info", "listening", {
        url: `http://${hostname}:${port}`,
        database: config.DATABASE_URL ? "server" : "embedded",
      }),
  }, inFlight.wrap((req, info) => handler(req, info)));
  // The embedded database belongs to one process: take DATA_DIR first, or stop here.
  if (config.DATABASE_URL) {
    if (!config.JWT_SECRET) await ensureDataDir(config.DATA_DIR);
  } else {
    lock = await lockDataDir(config.DATA_DIR, "stop it or set DATABASE_URL");
  }
  await checkLogDir(config.LOG_DIR);
  db = await openDatabase(config);
  const services = await buildServices(config, db);
  const applied = await migrate(db.sql, services.migrations);
  if (applied.length) log("info", "migrations applied", { applied });
  // Requests are sorted into canary cohorts without waiting on the database: know the rollout first.
  await services.rollout.percent().catch(() => {});
  // Heavy reads go to the replica while it is reachable and close enough (measured every 2 s).
  await services.replica?.start();
  const app = createApp(await appDeps(services, { tokenKey: await loadTokenKey(config) }));
  // Checks finished by other instances reach open dashboards (and the status cache) through
  // LISTEN; the embedded database serves one connection, so there the runner's own events are all
  // there is. Through a pooler LISTEN needs a direct connection; without one, everything polls.
  const listenOn = listenConnection(db);
  if (listenOn) await services.events.listen(listenOn);
  // Tokens and streams answer for their account as it is now: changes from any writer arrive through
  // LISTEN, or by comparing the accounts held with the database twice a second where it cannot run.
  await services.accounts.start(listenOn);
  if (db.session) {
    const warning = await checkPooledTimeout(db.sql, config.DB_STATEMENT_TIMEOUT_MS);
    if (warning) log("warn", warning);
    if (!db.session.direct) {
      log(
        "info",
        "through a pooler without DATABASE_DIRECT_URL: no LISTEN, dashboards, the status cache and " +
          "the accounts poll",
      );
    }
  }

  const demo = db.kind === "embedded"
    ? await ensureDemoData(db.sql, {
      adminPassword: config.SEED_ADMIN_PASSWORD,
      studentPassword: config.SEED_STUDENT_PASSWORD,
    })
    : null;
  handler = app.fetch;
  if (demo) {
    const url = `http://localhost:${server.addr.port}/admin/health`;
    // Printed once, on the first start only, once the server answers; not written to any file.
    console.log(
      `\nLevelguard demo data created: ${url}\n  admin login: ${demo.email}\n  password:    ${demo.password}\n` +
        `  (instructor ${demo.instructorEmail} has the same password; students student<id>@academy.example.com` +
        `${
          demo.studentPasswordSet
            ? " use SEED_STUDENT_PASSWORD"
            : " got a random password: set SEED_STUDENT_PASSWORD on a first start to choose it"
        })\n` +
        `  lost it? deno task admin:password (with the server stopped)\n`,
    );
  }

  // Request figures go to the shared request_stats every 5 s (the canary's error rate and latency).
  services.requestStats.start(5000, () => services.metrics.backgroundErrors.inc({ task: "request_stats" }));

  // Cron jobs stop with this signal (graceful shutdown unregisters them).
  const stopping = new AbortController();
  if (config.SCAN_ENABLED) {
    scheduleIntegrityScan(services.runner, config.SCAN_CRON, { signal: stopping.signal });
  }
  // Idempotency keys are promised for 24 h; hourly pruning keeps them 48 h. Expired dashboard
  // sessions, ended sign-in failure streaks and request figures older than the longest canary window
  // (with margin) go too.
  Deno.cron("levelguard-prune-idempotency-keys", "17 * * * *", { signal: stopping.signal }, async () => {
    try {
      const pruned = await pruneExpired(services.sql);
      if (pruned && Object.values(pruned).some((n) => n > 0)) log("info", "pruned", { ...pruned });
    } catch (err) {
      services.metrics.backgroundErrors.inc({ task: "prune" });
      log("error", "pruning expired keys, sessions and request figures failed", errorFields(err));
    }
  });

  let stoppingSince = 0;
  const shutdown = async (signal: Deno.Signal) => {
    if (stoppingSince) return;
    stoppingSince = Date.now();
    const graceMs = config.SHUTDOWN_GRACE_S * 1000;
    log("info", "shutting down", { signal, grace_s: config.SHUTDOWN_GRACE_S });
    stopping.abort();
    // Stop accepting; in-flight requests finish within the grace period, or are answered 503 then.
    const closed = server.shutdown();
    const drained = await Promise.race([
      closed.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), graceMs)),
    ]);
    if (!drained) {
      log("warn", "requests still running at the end of the grace period answered 503", {
        requests: inFlight.cut(),
      });
    }
    // A check still running is cut, its statements cancelled on the server.
    await services.runner.stop(Math.max(0, graceMs - (Date.now() - stoppingSince)));
    // The canary's last minute of figures, unless the database keeps it past the grace period.
    const flushMs = Math.max(0, graceMs - (Date.now() - stoppingSince));
    await Promise.race([services.requestStats.stop(), new Promise((r) => setTimeout(r, flushMs))]);
    services.replica?.stop();
    await services.accounts.stop();
    // A status change found by the last check still reaches the webhooks, within the grace period.
    await services.notifier.settled(Math.max(0, graceMs - (Date.now() - stoppingSince)));
    // A query the grace period cut (a check's scan) was cancelled above; exiting closes its connection.
    const closing = Math.max(500, graceMs - (Date.now() - stoppingSince));
    await Promise.race([db!.close().catch(() => {}), new Promise((r) => setTimeout(r, closing))]);
    // The 503s of the cut requests are written by now (an open event stream is cut by the exit).
    if (!drained) await Promise.race([closed, new Promise((r) => setTimeout(r, 200))]);
    lock?.release();
    log("info", "stopped", { after_ms: Date.now() - stoppingSince });
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
} catch (err) {
  await db?.close().catch(() => {});
  lock?.release();
  const message = isOneLine(err)
    ? err.message
    : `unexpected start-up failure: ${String((err as Error)?.message ?? err).split("\n")[0]}`;
  // A connection string in an error (a client quoting its input) never reaches the output whole.
  console.error(`levelguard: ${redactUrls(message)}`);
  if (!isOneLine(err) && debugging()) console.error(redactUrls(String((err as Error)?.stack ?? err)));
  Deno.exit(1);
}

/** Builds the Hono application from its dependencies (no I/O here). */
import { Hono } from "hono";
import type { Services } from "../lib/services.ts";
import type { Assets } from "../views/layout.tsx";
import { adminRoutes } from "./admin/index.ts";
import { dashboardErrorPage } from "./admin/error_page.tsx";
import { assetRoutes, assetUrls } from "./assets.ts";
import { authRoutes } from "./auth.ts";
import { API_CONTRACT } from "./contract.ts";
import type { AppEnv } from "./env.ts";
import { healthRoutes } from "./health.ts";
import { databaseGuard } from "./middleware/database_guard.ts";
import { rateLimit, type RateLimitStore, rateLimitStore } from "./middleware/rate_limit.ts";
import { logScope } from "./middleware/log_scope.ts";
import { requestId } from "./middleware/request_id.ts";
import { requestLog } from "./middleware/request_log.ts";
import { secureHeaders } from "./middleware/secure_headers.ts";
import { metricsRoutes } from "./metrics.ts";
import { httpMetrics } from "./middleware/metrics.ts";
import { requestStats } from "./middleware/request_stats.ts";
import { openapiRoutes } from "./openapi.ts";
import { opsRoutes } from "./ops.ts";
import { noStore } from "./middleware/no_store.ts";
import { problemAnswers } from "./problem.ts";
import { progressRoutes } from "./progress.ts";
import { rolloutRoutes } from "./rollout.ts";

/** Everything the HTTP surface is built from: the process's services plus the edge's own state. */
export interface AppDeps extends Services {
  /** HS256 key for access tokens. */
  tokenKey: Uint8Array;
  /** The rate limiter's counters (see `rateLimitStore`). */
  rateLimitStore: RateLimitStore;
  /** The pages' asset URLs (see `assetUrls`). */
  assets: Assets;
}

/**
 * The edge's state on top of the services, built one way for the server, the
 * tests and the benchmarks (reads the asset files once).
 */
export async function appDeps(services: Services, { tokenKey }: { tokenKey: Uint8Array }): Promise<AppDeps> {
  return {
    ...services,
    tokenKey,
    rateLimitStore: rateLimitStore(
      services.config,
      services.sql,
      () => services.metrics.backgroundErrors.inc({ task: "rate_limit_store" }),
    ),
    assets: await assetUrls(),
  };
}

/** The whole HTTP surface of Levelguard; each router gets exactly what it uses. */
export function createApp(deps: AppDeps) {
  const { config, sql, runner, tokenKey, migrations } = deps;
  const bodyTimeoutMs = config.REQUEST_BODY_TIMEOUT_MS;
  const app = new Hono<AppEnv>();
  // First, so every answer passes it: errors, 404s and refusals of the middleware below too.
  app.use(noStore());
  app.use(requestId({ trustProxy: config.TRUST_PROXY }));
  app.use(logScope);
  app.use(httpMetrics(deps.metrics));
  app.use(requestStats(deps.requestStats, deps.rollout));
  app.use(secureHeaders({ trustProxy: config.TRUST_PROXY }));
  if (config.LOG_REQUESTS) app.use(requestLog);
  // RATE_LIMIT_PER_MINUTE=0: no limiter at all (not even a pass-through layer).
  if (config.RATE_LIMIT_PER_MINUTE > 0) app.use(rateLimit({ config, store: deps.rateLimitStore }));
  // Errors answer problem+json, or a page to a browser on the dashboard, from one mapping.
  const problems = problemAnswers({ page: dashboardErrorPage(deps.assets) });
  app.onError(problems.onError);
  app.notFound(problems.notFoundOrMethodNotAllowed(() => app.routes));

  // Bounded waits: while the database is unreachable these answer 503 at once.
  const guard = databaseGuard(deps.watch);
  for (
    const prefix of ["/api/v1/auth/*", "/api/v1/specializations/*", "/api/v1/health/*", "/api/v1/admin/*"]
  ) {
    app.use(prefix, guard);
  }

  app.route("/", opsRoutes({ sql, migrations, replica: deps.replica }));
  app.route("/", metricsRoutes({ metrics: deps.metrics, config }));
  app.route(
    "/",
    authRoutes({
      sql,
      tokenKey,
      ttlSeconds: config.JWT_TTL_SECONDS,
      passwordChecks: deps.passwordChecks,
      bodyTimeoutMs,
    }),
  );
  const answerWithinMs = config.DB_CONNECT_TIMEOUT_S * 1000 + 1000;
  app.route(
    "/",
    progressRoutes({
      awards: deps.awards,
      tokenKey,
      accounts: deps.accounts,
      answerWithinMs,
      metrics: deps.metrics,
      bodyTimeoutMs,
    }),
  );
  app.route(
    "/api/v1/health",
    healthRoutes({
      sql,
      runner,
      status: deps.status,
      tokenKey,
      accounts: deps.accounts,
      metrics: deps.metrics,
      requestStats: deps.requestStats,
      soakHours: config.CANARY_STEP_HOURS,
      reads: deps.reads,
      bodyTimeoutMs,
    }),
  );
  app.route(
    "/",
    rolloutRoutes({ sql, rollout: deps.rollout, tokenKey, accounts: deps.accounts, bodyTimeoutMs }),
  );
  app.use("/admin/*", guard);
  app.route(
    "/",
    adminRoutes({
      sql,
      runner,
      events: deps.events,
      accounts: deps.accounts,
      config,
      assets: deps.assets,
      passwordChecks: deps.passwordChecks,
      metrics: deps.metrics,
      rollout: deps.rollout,
      soakHours: config.CANARY_STEP_HOURS,
      reads: deps.reads,
    }),
  );
  app.route("/", assetRoutes());
  // A browser pointed at the service lands on the dashboard (the sign-in page first).
  app.get("/", (c) => c.redirect("/admin/health", 302));
  app.route("/", openapiRoutes({ contract: API_CONTRACT }));
  return app;
}

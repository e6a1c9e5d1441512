/** Builds the Hono application from its dependencies (no I/O here). */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { PayloadTooLarge } from "../lib/errors.ts";
import type { AppDeps, AppEnv } from "./env.ts";
import { onError, onNotFound } from "./middleware/problem.ts";
import { rateLimit } from "./middleware/rate_limit.ts";
import { requestLog } from "./middleware/request_log.ts";
import { secureHeaders } from "./middleware/secure_headers.ts";
import { authRoutes } from "./auth.ts";
import { openapiRoutes } from "./openapi.ts";
import { opsRoutes } from "./ops.ts";
import { healthRoutes } from "./health.ts";
import { progressRoutes } from "./progress.ts";

/** Request bodies above this size are refused with 413. */
export const BODY_LIMIT_BYTES = 16 * 1024;

/** The whole HTTP surface of Levelguard. */
export function createApp(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  app.use(requestId({ headerName: "X-Request-Id" }));
  app.use(secureHeaders({ trustProxy: deps.config.TRUST_PROXY }));
  if (deps.config.LOG_REQUESTS) app.use(requestLog);
  app.use(async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.use(rateLimit(deps.config, deps.sql));
  app.use(
    "/api/*",
    bodyLimit({
      maxSize: BODY_LIMIT_BYTES,
      onError: () => {
        throw new PayloadTooLarge(BODY_LIMIT_BYTES);
      },
    }),
  );
  app.onError(onError);
  app.notFound(onNotFound);

  app.route("/", opsRoutes());
  app.route("/", authRoutes());
  app.route("/", progressRoutes());
  app.route("/api/v1/health", healthRoutes());
  app.route("/", openapiRoutes(() => app.routes));
  return app;
}

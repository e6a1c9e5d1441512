/**
 * GET /metrics (Prometheus text format). With METRICS_TOKEN set, the bearer
 * token is required; unset, only loopback clients are answered: the socket's
 * peer, or behind a trusted proxy (TRUST_PROXY) the client it forwarded, so
 * neither a proxy on the same host nor a forged X-Forwarded-For opens it to
 * the world. Never rate limited.
 */
import { Hono } from "hono";
import type { Config } from "../lib/config.ts";
import type { Metrics } from "../lib/metrics.ts";
import { inCidrs, parseCidr } from "../lib/rate_limit/ip.ts";
import { sameSecret } from "../lib/sessions.ts";
import type { AppEnv } from "./env.ts";
import { requestAddress } from "./middleware/forwarded.ts";
import { HttpProblem } from "./problem.ts";

const LOOPBACK = [parseCidr("127.0.0.0/8")!, parseCidr("::1/128")!];

/** The scrape endpoint. */
export function metricsRoutes(
  { metrics, config }: { metrics: Metrics; config: Pick<Config, "METRICS_TOKEN" | "TRUST_PROXY"> },
) {
  const app = new Hono<AppEnv>();
  app.get("/metrics", async (c) => {
    const token = config.METRICS_TOKEN;
    if (token) {
      const given = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim() ?? "";
      if (!sameSecret(given, token)) {
        throw new HttpProblem(401, "GET /metrics needs the METRICS_TOKEN as a bearer token", {
          "WWW-Authenticate": 'Bearer realm="metrics"',
        });
      }
    } else {
      const address = requestAddress(c, config.TRUST_PROXY);
      if (address === null || !inCidrs(address, LOOPBACK)) {
        throw new HttpProblem(
          403,
          "GET /metrics answers loopback clients only; set METRICS_TOKEN to scrape remotely",
        );
      }
    }
    return c.body(await metrics.scrape(), 200, { "Content-Type": metrics.contentType });
  });
  return app;
}

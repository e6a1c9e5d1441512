/** Per-client-IP rate limiting on hono-rate-limiter, with our key, exemptions, store and headers. */
import type { MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { MemoryStore, rateLimiter, type RateLimitInfo, type Store } from "hono-rate-limiter";
import type { Config } from "../../lib/config.ts";
import type { Sql } from "../../lib/db.ts";
import { inCidrs, limiterKey } from "../../lib/rate_limit/ip.ts";
import {
  RATE_LIMIT_WINDOW_MS,
  rateLimitFree,
  rateLimitHeaders,
  type RateLimitState,
  secondsUntil,
} from "../../lib/rate_limit/policy.ts";
import { PostgresRateLimitStore } from "../../lib/rate_limit/postgres_store.ts";
import { HttpProblem } from "../problem.ts";
import { requestAddress } from "./forwarded.ts";

/** Context variables of the limiter. */
type LimitEnv = { Variables: { clientAddress: bigint | null; rateLimit: RateLimitInfo } };

/** The counters one process (memory) or every instance (postgres) shares. */
export type RateLimitStore = Store<LimitEnv>;

type LimitConfig = Pick<
  Config,
  "RATE_LIMIT_PER_MINUTE" | "RATE_LIMIT_EXEMPT" | "RATE_LIMIT_STORE" | "TRUST_PROXY"
>;

/** The store `RATE_LIMIT_STORE` names; build it once per process. */
export function rateLimitStore(
  config: Pick<Config, "RATE_LIMIT_STORE">,
  sql: Sql,
  onFailure?: () => void,
): RateLimitStore {
  return config.RATE_LIMIT_STORE === "postgres"
    ? new PostgresRateLimitStore(sql, { windowMs: RATE_LIMIT_WINDOW_MS, onFailure })
    : new MemoryStore<LimitEnv>();
}

function state(info: RateLimitInfo): RateLimitState {
  return { limit: info.limit, used: info.used, resetSeconds: secondsUntil(info.resetTime) };
}

/**
 * Limits every request except the probes and static assets to `RATE_LIMIT_PER_MINUTE` per client
 * (none when 0); exempt CIDRs pass uncounted. 429 is a problem with
 * `Retry-After`; every counted response carries `RateLimit-Policy`/`RateLimit`.
 */
export function rateLimit({ config, store }: { config: LimitConfig; store: RateLimitStore }) {
  const limit = config.RATE_LIMIT_PER_MINUTE;
  const exempt = config.RATE_LIMIT_EXEMPT;

  const limiter: MiddlewareHandler<LimitEnv> = rateLimiter<LimitEnv>({
    windowMs: RATE_LIMIT_WINDOW_MS,
    limit,
    store,
    standardHeaders: false,
    keyGenerator: (c) => limiterKey(c.var.clientAddress ?? null),
    handler: (c) => {
      const info = state(c.get("rateLimit"));
      throw new HttpProblem(429, `Rate limit exceeded; retry in ${info.resetSeconds} s`, {
        ...rateLimitHeaders(info),
        "Retry-After": String(info.resetSeconds),
      });
    },
  });

  return createMiddleware<LimitEnv>(async (c, next) => {
    if (rateLimitFree(c.req.path)) return await next();
    const address = requestAddress(c, config.TRUST_PROXY);
    if (address !== null && inCidrs(address, exempt)) return await next();
    c.set("clientAddress", address);
    await limiter(c, async () => {
      for (const [name, value] of Object.entries(rateLimitHeaders(state(c.get("rateLimit"))))) {
        c.header(name, value);
      }
      await next();
    });
  });
}

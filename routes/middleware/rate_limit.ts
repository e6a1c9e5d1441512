/** Per-client-IP rate limiting on hono-rate-limiter, with our key, exemptions, store and headers. */
import type { Context, MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import { createMiddleware } from "hono/factory";
import { MemoryStore, rateLimiter, type RateLimitInfo, type Store } from "hono-rate-limiter";
import type { Config } from "../../lib/config.ts";
import type { Sql } from "../../lib/db.ts";
import { TooManyRequests } from "../../lib/errors.ts";
import {
  RATE_LIMIT_FREE_PATHS,
  RATE_LIMIT_WINDOW_MS,
  rateLimitHeaders,
  type RateLimitState,
  secondsUntil,
} from "../../lib/rate_limit.ts";
import { clientAddress, inCidrs, limiterKey, parseCidrList } from "../../lib/rate_limit_ip.ts";
import { PostgresRateLimitStore } from "../../lib/rate_limit_store.ts";
import type { AppEnv } from "../env.ts";

/** Context variables of the limiter. */
type LimitEnv = AppEnv & { Variables: { clientAddress: bigint | null; rateLimit: RateLimitInfo } };

type LimitConfig = Pick<
  Config,
  "RATE_LIMIT_PER_MINUTE" | "RATE_LIMIT_EXEMPT" | "RATE_LIMIT_STORE" | "TRUST_PROXY"
>;

/**
 * The socket's peer address. `Deno.serve` hands it to `app.fetch` as the env
 * (`remoteAddr`); tests pass the same shape as `app.request`'s third argument.
 */
function peerAddress(c: Context): string | undefined {
  if (!(c.env as { remoteAddr?: unknown } | undefined)?.remoteAddr) return undefined;
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

function state(info: RateLimitInfo): RateLimitState {
  return { limit: info.limit, used: info.used, resetSeconds: secondsUntil(info.resetTime) };
}

/**
 * Limits every request except the probes to `RATE_LIMIT_PER_MINUTE` per client
 * (none when 0); exempt CIDRs pass uncounted. 429 is a problem with
 * `Retry-After`; every counted response carries `RateLimit-Policy`/`RateLimit`.
 */
export function rateLimit(config: LimitConfig, sql: Sql) {
  const limit = config.RATE_LIMIT_PER_MINUTE;
  if (limit === 0) return createMiddleware<LimitEnv>(async (_c, next) => await next());
  const exempt = parseCidrList(config.RATE_LIMIT_EXEMPT);
  const windowMs = RATE_LIMIT_WINDOW_MS;
  const store: Store<LimitEnv> = config.RATE_LIMIT_STORE === "postgres"
    ? new PostgresRateLimitStore(sql, { windowMs })
    : new MemoryStore<LimitEnv>();

  const limiter: MiddlewareHandler<LimitEnv> = rateLimiter<LimitEnv>({
    windowMs,
    limit,
    store,
    standardHeaders: false,
    keyGenerator: (c) => limiterKey(c.var.clientAddress ?? null),
    handler: (c) => {
      const info = state(c.get("rateLimit"));
      throw new TooManyRequests(info.resetSeconds, rateLimitHeaders(info));
    },
  });

  return createMiddleware<LimitEnv>(async (c, next) => {
    if (RATE_LIMIT_FREE_PATHS.has(c.req.path)) return await next();
    const address = clientAddress(peerAddress(c), c.req.header("x-forwarded-for"), config.TRUST_PROXY);
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

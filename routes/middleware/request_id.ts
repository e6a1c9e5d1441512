/**
 * The request id (`X-Request-Id`, `c.var.requestId`): kept from a trusted
 * proxy (TRUST_PROXY) when it is well formed, so the proxy's log and ours
 * name one request alike; from anyone else the server makes its own, since
 * the id is stored with every XP change (two clients sending the same one
 * would otherwise share it on the ledger).
 */
import { createMiddleware } from "hono/factory";
import { requestId as honoRequestId } from "hono/request-id";
import type { TrustedProxies } from "../../lib/forwarded.ts";
import { fromTrustedProxy } from "./forwarded.ts";

const HEADER = "X-Request-Id";

/** The middleware; mount it first, so every response (errors and 429s too) carries the id. */
export function requestId({ trustProxy }: { trustProxy: TrustedProxies }) {
  // Hono's, which checks the incoming id (1-255 of [A-Za-z0-9_=-]) and makes a UUID otherwise.
  const kept = honoRequestId({ headerName: HEADER });
  const own = honoRequestId({ headerName: "" });
  return createMiddleware(async (c, next) => {
    if (fromTrustedProxy(c, trustProxy)) return await kept(c, next);
    await own(c, async () => {
      c.header(HEADER, c.get("requestId"));
      await next();
    });
  });
}

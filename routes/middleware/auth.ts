/** Bearer-token authentication and role checks (401 vs 403). */
import { createMiddleware } from "hono/factory";
import { Forbidden, Unauthorized } from "../../lib/errors.ts";
import { type Principal, type Role, verifyToken } from "../../lib/tokens.ts";
import type { AppEnv } from "../env.ts";

/** Context variables set by `requireRole`. */
export type AuthEnv = AppEnv & { Variables: { principal: Principal } };

/** Lets the request through only with a valid token whose role is one of `roles`. */
export function requireRole(...roles: Role[]) {
  return createMiddleware<AuthEnv>(async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer ([A-Za-z0-9_\-.]+)$/i.exec(header.trim());
    if (!match) throw new Unauthorized(header ? "Malformed Authorization header" : "Authentication required");
    const principal = await verifyToken(c.get("deps").jwtSecret, match[1]);
    if (!principal) throw new Unauthorized("Invalid or expired token");
    if (!roles.includes(principal.role)) throw new Forbidden();
    c.set("principal", principal);
    await next();
  });
}

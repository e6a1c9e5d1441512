/** Bearer-token authentication and role checks (401 before 403). */
import { createMiddleware } from "hono/factory";
import { Forbidden, Unauthenticated } from "../../lib/errors.ts";
import type { Role } from "../../lib/model.ts";
import { VerifiedTokens } from "../../lib/tokens.ts";
import type { AuthEnv } from "../env.ts";

/**
 * A guard factory bound to the token key: `const allow = roleGuard(key);
 * app.use(allow("ADMIN"))`. Verified tokens are kept for their remaining life.
 */
export function roleGuard(tokenKey: Uint8Array) {
  const tokens = new VerifiedTokens(tokenKey);
  /** Lets the request through only with a valid token whose role is one of `roles`. */
  return (...roles: Role[]) =>
    createMiddleware<AuthEnv>(async (c, next) => {
      const header = c.req.header("authorization") ?? "";
      const match = /^Bearer ([A-Za-z0-9_\-.]+)$/i.exec(header.trim());
      if (!match) {
        throw new Unauthenticated(header ? "Malformed Authorization header" : "Authentication required");
      }
      const principal = await tokens.verify(match[1]);
      if (!principal) throw new Unauthenticated("Invalid or expired token");
      if (!roles.includes(principal.role)) throw new Forbidden();
      c.set("principal", principal);
      await next();
    });
}

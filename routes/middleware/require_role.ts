/** Bearer-token authentication and role checks (401 before 403), against the account as it is now. */
import { createMiddleware } from "hono/factory";
import { type AccountLookup, type AccountState, speaksFor } from "../../lib/accounts.ts";
import { Forbidden, Unauthenticated } from "../../lib/errors.ts";
import type { Role } from "../../lib/model.ts";
import { VerifiedTokens } from "../../lib/tokens.ts";
import type { AuthEnv } from "../env.ts";

/**
 * A guard factory bound to the token key and the accounts: `const allow =
 * roleGuard(key, accounts); app.use(allow("ADMIN"))`. A token passes only
 * while its account is active, has the token's role and is at the token's
 * epoch (no activation, role or password change since it was issued);
 * anything else is the same 401 as a forged token. Signatures are checked
 * once per token (kept for its remaining life); the account on every request,
 * from memory (lib/accounts.ts).
 */
export function roleGuard(tokenKey: Uint8Array, accounts: AccountLookup) {
  const tokens = new VerifiedTokens(tokenKey);
  /** Lets the request through only with a valid token whose account's current role is one of `roles`. */
  return (...roles: Role[]) =>
    createMiddleware<AuthEnv>(async (c, next) => {
      const header = c.req.header("authorization") ?? "";
      const match = /^Bearer ([A-Za-z0-9_\-.]+)$/i.exec(header.trim());
      if (!match) {
        throw new Unauthenticated(header ? "Malformed Authorization header" : "Authentication required");
      }
      const principal = await tokens.verify(match[1]);
      if (!principal) throw new Unauthenticated("Invalid or expired token");
      // A Map lookup once the account has been seen; one query the first time.
      let account: AccountState | null | undefined = accounts.get(principal.userId);
      if (account === undefined) {
        try {
          account = await accounts.load(principal.userId);
        } catch (err) {
          // The database is away: refused (503) as the request itself would be, its logs naming the caller.
          c.set("principal", principal);
          throw err;
        }
      }
      if (!account || !speaksFor(account, principal)) throw new Unauthenticated("Invalid or expired token");
      if (!roles.includes(account.role)) throw new Forbidden();
      c.set("principal", principal);
      await next();
    });
}

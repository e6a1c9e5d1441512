/** /api/v1/admin/rollout: the dashboard's rollout percentage (ADMIN only), read and set with a reason. */
import { Hono } from "hono";
import type { AccountLookup } from "../lib/accounts.ts";
import { activeAdminEmail, rolloutState, setRollout } from "../lib/canary/rollout.ts";
import type { RolloutCache } from "../lib/canary/rollout_cache.ts";
import type { Sql } from "../lib/db.ts";
import type { AuthEnv } from "./env.ts";
import { roleGuard } from "./middleware/require_role.ts";
import { jsonBody } from "./middleware/validate.ts";
import { rolloutBody } from "./schemas.ts";

/** What the rollout API needs. */
export interface RolloutDeps {
  sql: Sql;
  rollout: RolloutCache;
  tokenKey: Uint8Array;
  /** The accounts tokens speak for, as they are now. */
  accounts: AccountLookup;
  /** REQUEST_BODY_TIMEOUT_MS. */
  bodyTimeoutMs: number;
}

/** GET and PUT /api/v1/admin/rollout. */
export function rolloutRoutes({ sql, rollout, tokenKey, accounts, bodyTimeoutMs }: RolloutDeps) {
  const app = new Hono<AuthEnv>();
  const admin = roleGuard(tokenKey, accounts)("ADMIN");

  app.get("/api/v1/admin/rollout", admin, async (c) => {
    return c.json(await rolloutState(sql));
  });

  app.put("/api/v1/admin/rollout", admin, jsonBody(rolloutBody, { timeoutMs: bodyTimeoutMs }), async (c) => {
    const { percent, reason } = c.req.valid("json");
    const actorId = c.get("principal").userId;
    await setRollout(sql, {
      percent,
      reason: reason ?? null,
      source: "api",
      actorId,
      actor: await activeAdminEmail(sql, actorId),
    });
    rollout.set(percent);
    return c.json(await rolloutState(sql));
  });
  return app;
}

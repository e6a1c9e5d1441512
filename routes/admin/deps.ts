/** What the dashboard's routers are built from (routes/admin/index.ts hands each one its share). */
import type { MiddlewareHandler } from "hono";
import type { Accounts } from "../../lib/accounts.ts";
import type { PasswordChecks } from "../../lib/auth.ts";
import type { RolloutCache } from "../../lib/canary/rollout_cache.ts";
import type { Config } from "../../lib/config.ts";
import type { Sql } from "../../lib/db.ts";
import type { CheckEvents } from "../../lib/integrity/events.ts";
import type { IntegrityRunner } from "../../lib/integrity/runner.ts";
import type { Metrics } from "../../lib/metrics.ts";
import type { Assets } from "../../views/layout.tsx";
import type { SessionEnv } from "../middleware/session.ts";

/** What the dashboard needs. */
export interface AdminDeps {
  sql: Sql;
  runner: IntegrityRunner;
  events: CheckEvents;
  /** The accounts as they are now: an account that changes ends its live streams at once. */
  accounts: Pick<Accounts, "watch">;
  config: Pick<
    Config,
    | "SCAN_ENABLED"
    | "SCAN_CRON"
    | "TRUST_PROXY"
    | "DASHBOARD_REFRESH_SECONDS"
    | "SESSION_TTL_SECONDS"
    | "REQUEST_BODY_TIMEOUT_MS"
  >;
  assets: Assets;
  passwordChecks: PasswordChecks;
  metrics: Metrics;
  rollout: RolloutCache;
  /** CANARY_STEP_HOURS. */
  soakHours: number;
  /** Where heavy reads go (the replica while it is usable). */
  reads: () => Sql;
}

/** A signed-in admin's requests. */
export type SignedIn = MiddlewareHandler<SessionEnv>;

/** The health data's guard: a signed-in admin in the rollout (see rollout.tsx). */
export type Dashboard = readonly [SignedIn, SignedIn];

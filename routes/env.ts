/** What every route can reach through the context: the app's dependencies. */
import type { Config } from "../lib/config.ts";
import type { Sql } from "../lib/db.ts";
import type { Migration } from "../lib/migrate.ts";

/** Dependencies handed to `createApp`; tests build their own. */
export interface AppDeps {
  config: Config;
  sql: Sql;
  /** The migration files this build ships (for readiness). */
  migrations: Migration[];
  /** HS256 key for access tokens. */
  jwtSecret: Uint8Array;
}

/** Hono environment shared by all routers. */
export type AppEnv = {
  Variables: {
    deps: AppDeps;
    requestId: string;
  };
};

/** Hono environments: the per-request values routes can read from the context (nothing long-lived). */
import type { Principal } from "../lib/tokens.ts";

/** Every request: its id (set by the request-id middleware). */
export type AppEnv = {
  Variables: {
    requestId: string;
  };
};

/** Requests that passed `requireRole`: who is calling. */
export type AuthEnv = {
  Variables: {
    requestId: string;
    principal: Principal;
  };
};

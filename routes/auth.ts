/** POST /api/v1/auth/login */
import { Hono } from "hono";
import type { z } from "zod";
import { login, type PasswordChecks } from "../lib/auth.ts";
import type { Sql } from "../lib/db.ts";
import type { AppEnv } from "./env.ts";
import { jsonBody } from "./middleware/validate.ts";
import { loginBody, type loginResponse } from "./schemas.ts";

/**
 * The login endpoint: 200 with a bearer token, 401 with one message for every
 * failure, 503 with Retry-After when a sign-in would wait longer than
 * PASSWORD_QUEUE_MAX_WAIT_MS.
 */
export function authRoutes(
  { sql, tokenKey, ttlSeconds, passwordChecks, bodyTimeoutMs }: {
    sql: Sql;
    tokenKey: Uint8Array;
    ttlSeconds: number;
    passwordChecks: PasswordChecks;
    /** REQUEST_BODY_TIMEOUT_MS. */
    bodyTimeoutMs: number;
  },
) {
  const app = new Hono<AppEnv>();
  app.post("/api/v1/auth/login", jsonBody(loginBody, { timeoutMs: bodyTimeoutMs }), async (c) => {
    const { token, expiresIn } = await login(sql, tokenKey, ttlSeconds, c.req.valid("json"), passwordChecks);
    const body: z.infer<typeof loginResponse> = {
      access_token: token,
      token_type: "bearer",
      expires_in: expiresIn,
    };
    return c.json(body);
  });
  return app;
}

/** POST /api/v1/auth/login */
import { Hono } from "hono";
import { login } from "../lib/auth.ts";
import { loginBody } from "../lib/schemas.ts";
import type { AppEnv } from "./env.ts";
import { jsonBody } from "./middleware/validate.ts";

/** The login endpoint: 200 with a bearer token, 401 with one message for every failure. */
export function authRoutes() {
  const app = new Hono<AppEnv>();
  app.post("/api/v1/auth/login", ...jsonBody(loginBody), async (c) => {
    const { config, sql, jwtSecret } = c.get("deps");
    const result = await login(sql, jwtSecret, config.JWT_TTL_SECONDS, c.req.valid("json"));
    c.header("Cache-Control", "no-store");
    return c.json(result);
  });
  return app;
}

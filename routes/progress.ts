/** POST /api/v1/specializations/progress/update: XP through the coupling enforcer. */
import { Hono } from "hono";
import { applyXpChange } from "../lib/coupling.ts";
import type { Sql } from "../lib/db.ts";
import { Invalid } from "../lib/errors.ts";
import type { AuthEnv } from "./env.ts";
import { roleGuard } from "./middleware/require_role.ts";
import { jsonBody } from "./middleware/validate.ts";
import { progressUpdateBody } from "./schemas.ts";

// Printable ASCII without spaces, like the keys clients generate (UUIDs, ULIDs).
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** The progress update endpoint (ADMIN, INSTRUCTOR). */
export function progressRoutes({ sql, tokenKey }: { sql: Sql; tokenKey: Uint8Array }) {
  const allow = roleGuard(tokenKey);
  const app = new Hono<AuthEnv>();
  app.post(
    "/api/v1/specializations/progress/update",
    allow("ADMIN", "INSTRUCTOR"),
    jsonBody(progressUpdateBody),
    async (c) => {
      const key = c.req.header("idempotency-key");
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
        throw new Invalid("The Idempotency-Key header is invalid", [
          { field: "Idempotency-Key", message: "Must be 1 to 255 printable ASCII characters without spaces" },
        ]);
      }
      const body = c.req.valid("json");
      const { body: json, replayed } = await applyXpChange(sql, {
        studentId: body.student_id,
        specializationId: body.specialization_id,
        xpChange: body.xp_change,
        actorId: c.get("principal").userId,
        requestId: c.get("requestId"),
        idempotencyKey: key,
      });
      if (replayed) c.header("Idempotent-Replayed", "true");
      // Already JSON (built by PostgreSQL in the documented order): sent without re-encoding.
      return c.body(json, 200, { "Content-Type": "application/json" });
    },
  );
  return app;
}

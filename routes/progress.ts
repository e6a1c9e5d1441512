/** POST /api/v1/specializations/progress/update: XP through the coupling enforcer. */
import { Hono } from "hono";
import type { AccountLookup } from "../lib/accounts.ts";
import type { AwardBatcher } from "../lib/award_batcher.ts";
import type { Metrics } from "../lib/metrics.ts";
import { Invalid } from "../lib/errors.ts";
import type { AuthEnv } from "./env.ts";
import type { GuardEnv } from "./middleware/database_guard.ts";
import { roleGuard } from "./middleware/require_role.ts";
import { jsonBody } from "./middleware/validate.ts";
import { progressUpdateBody } from "./schemas.ts";

// Clocks of the app and the database may differ this much without refusing every change.
const CLOCK_SKEW_ALLOWANCE_MS = 30_000;

// Printable ASCII without spaces, like the keys clients generate (UUIDs, ULIDs).
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** The progress update endpoint (ADMIN, INSTRUCTOR). */
export function progressRoutes(
  { awards, tokenKey, accounts, answerWithinMs, metrics, bodyTimeoutMs }: {
    awards: AwardBatcher;
    tokenKey: Uint8Array;
    accounts: AccountLookup;
    answerWithinMs: number;
    metrics: Metrics;
    /** REQUEST_BODY_TIMEOUT_MS. */
    bodyTimeoutMs: number;
  },
) {
  const allow = roleGuard(tokenKey, accounts);
  const app = new Hono<AuthEnv & GuardEnv>();
  app.post(
    "/api/v1/specializations/progress/update",
    allow("ADMIN", "INSTRUCTOR"),
    jsonBody(progressUpdateBody, { timeoutMs: bodyTimeoutMs }),
    async (c) => {
      const key = c.req.header("idempotency-key");
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
        throw new Invalid("The Idempotency-Key header is invalid", [
          { field: "Idempotency-Key", message: "Must be 1 to 255 printable ASCII characters without spaces" },
        ]);
      }
      const body = c.req.valid("json");
      c.set("writeInFlight", true);
      const { body: json, replayed } = await awards.apply({
        studentId: body.student_id,
        specializationId: body.specialization_id,
        xpChange: body.xp_change,
        actorId: c.get("principal").userId,
        requestId: c.get("requestId"),
        idempotencyKey: key,
        // A statement still queued long after the caller was answered (an outage) must not apply
        // when the database returns; the database's clock decides, so allow for some skew.
        deadline: new Date(Date.now() + answerWithinMs + CLOCK_SKEW_ALLOWANCE_MS),
      });
      metrics.xpChanges.inc({ result: replayed ? "replayed" : "applied" });
      if (replayed) c.header("Idempotent-Replayed", "true");
      // Already JSON (built by PostgreSQL in the documented order): sent without re-encoding.
      return c.body(json, 200, { "Content-Type": "application/json" });
    },
  );
  return app;
}

/** Request schemas of the SPEC: they validate requests, type handlers and generate the OpenAPI document. */
import { z } from "zod";

/** Specialization ids. */
export const specializationId = z.enum(["PLAYER", "COACH", "INTERNSHIP"]);

/** Violation kinds the integrity scan reports. */
export const violationKind = z.enum([
  "LEVEL_MISMATCH",
  "MISSING_LICENSE",
  "ORPHAN_LICENSE",
  "MAX_LEVEL_BELOW_CURRENT",
  "LEVEL_XP_MISMATCH",
  "LEDGER_MISMATCH",
]);

const positiveId = z.int().positive().max(2_147_483_647);

/** POST /api/v1/auth/login */
export const loginBody = z.strictObject({
  // No spaces or control characters (PostgreSQL text cannot even hold NUL).
  email: z.string().trim().min(3).max(254).regex(/^[^\s\p{Cc}]+@[^\s\p{Cc}]+$/u, "Invalid email"),
  password: z.string().min(1).max(1024),
});

/** 200 of POST /api/v1/auth/login */
export const loginResponse = z.strictObject({
  access_token: z.string(),
  token_type: z.literal("bearer"),
  expires_in: z.int().positive(),
});

/** POST /api/v1/specializations/progress/update */
export const progressUpdateBody = z.strictObject({
  student_id: positiveId,
  specialization_id: specializationId,
  // Any positive safe integer (z.int() refuses 1.5, "10" and values above 2^53-1);
  // the level is capped and total XP saturates.
  xp_change: z.int().positive(),
});

/** POST /api/v1/health/check-now (body optional) */
export const checkNowBody = z.strictObject({
  user_id: positiveId.optional(),
});

/** GET /api/v1/health/violations */
export const violationsQuery = z.strictObject({
  kind: violationKind.optional(),
  specialization: specializationId.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  // Opaque and URL-safe (base64url or digits): anything else is 400 before any query.
  cursor: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, "Invalid cursor").optional(),
});

/** GET /api/v1/health/metrics */
export const metricsQuery = z.strictObject({
  window: z.enum(["1h", "24h", "7d"]).default("24h"),
});

/** PUT /api/v1/admin/rollout */
export const rolloutBody = z.strictObject({
  percent: z.int().min(0).max(100),
});

/** POST /api/v1/health/violations/repair */
export const repairBody = z.strictObject({
  student_id: positiveId.optional(),
  dry_run: z.boolean(),
});

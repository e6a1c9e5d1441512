/**
 * Request schemas of the API: each validates its requests, types its handler
 * (`z.infer`) and describes it in the OpenAPI document.
 */
import { z } from "zod";
import { SPECIALIZATION_IDS, VIOLATION_KINDS } from "../lib/model.ts";

/** Specialization ids. */
export const specializationId = z.enum(SPECIALIZATION_IDS);

/** Violation kinds the integrity scan reports. */
export const violationKind = z.enum(VIOLATION_KINDS);

const positiveId = z.int().positive().max(2_147_483_647);

/** A student id as the dashboard's paths and forms carry it (text). */
export const studentIdText = z.coerce.number().pipe(positiveId);

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

/** 200 of the progress update: the state after the change (built by `apply_xp`, sent as is). */
export const progressUpdateResponse = z.strictObject({
  student_id: z.int(),
  specialization_id: specializationId,
  xp_change: z.int(),
  /** What was added after saturation at 2^53-1 (equal to xp_change unless the total is capped). */
  xp_applied: z.int(),
  previous_level: z.int(),
  leveled_up: z.boolean(),
  /** Id of the ledger row (xp_events) recording this change. */
  event_id: z.int(),
  progress: z.strictObject({ current_level: z.int(), total_xp: z.int(), updated_at: z.iso.datetime() }),
  license: z.strictObject({
    current_level: z.int(),
    max_achieved_level: z.int(),
    updated_at: z.iso.datetime(),
  }),
});

/** The body of a 200 progress update. */
export type ProgressUpdateResult = z.infer<typeof progressUpdateResponse>;

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

/** POST /api/v1/health/violations/repair */
export const repairBody = z.strictObject({
  student_id: positiveId.optional(),
  dry_run: z.boolean(),
});

/** PUT /api/v1/admin/rollout */
export const rolloutBody = z.strictObject({
  percent: z.int().min(0).max(100),
  // Free text, but no control characters (PostgreSQL text cannot even hold NUL).
  reason: z.string().trim().min(1).max(500).regex(/^[^\p{Cc}]*$/u, "Must not contain control characters")
    .refine((text) => text.isWellFormed(), "Must be well-formed Unicode").optional(),
});

/** GET /api/v1/health/canary */
export const canaryQuery = z.strictObject({
  window: z.enum(["15m", "1h", "6h", "24h"]).default("1h"),
});

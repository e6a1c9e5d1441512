/**
 * The JSON API, one row per endpoint, with the schemas that validate it and
 * the shape of its 200: the source of the OpenAPI document, of the typed
 * client the tests generate, and of the security tests' route matrix. A test
 * fails when a mounted /api route is missing here or a row is not mounted.
 */
import { z } from "zod";
import { canaryReportSchema } from "../lib/canary/verdict.ts";
import { rolloutStateSchema } from "../lib/canary/rollout.ts";
import { healthMetricsSchema } from "../lib/integrity/health_metrics.ts";
import { repairResultSchema } from "../lib/integrity/repair.ts";
import { healthReportSchema } from "../lib/integrity/report.ts";
import { checkRecordSchema } from "../lib/integrity/store.ts";
import { violationPageSchema } from "../lib/integrity/violations.ts";
import type { RouteDoc } from "./openapi_document.ts";
import {
  canaryQuery,
  checkNowBody,
  loginBody,
  loginResponse,
  metricsQuery,
  progressUpdateBody,
  progressUpdateResponse,
  repairBody,
  rolloutBody,
  violationsQuery,
} from "./schemas.ts";

const ADMIN = ["ADMIN"] as const;

/** Every endpoint of `/api/v1`. */
export const API_CONTRACT: readonly RouteDoc[] = [
  {
    method: "POST",
    path: "/api/v1/auth/login",
    summary: "Exchange email and password for a bearer token",
    tag: "auth",
    roles: [],
    body: loginBody,
    response: loginResponse,
    responses: {
      401: "Wrong credentials or inactive user (one message for all)",
      429: "Too many failed sign-ins for this email (known or not) across every instance, refused before " +
        "any password check; wait Retry-After seconds (doubles per further failure, 30 s at most); or the " +
        "per-IP rate limit",
      503: "Too many sign-ins at once (the password checks are queued and the queue is full), or the " +
        "database is unavailable; retry after Retry-After",
    },
    example: { email: "admin@levelguard.local", password: "correct horse battery staple" },
  },
  {
    method: "POST",
    path: "/api/v1/specializations/progress/update",
    summary: "Apply an XP change to a student's progress and license, atomically",
    tag: "progress",
    roles: ["ADMIN", "INSTRUCTOR"],
    body: progressUpdateBody,
    response: progressUpdateResponse,
    responses: {
      401: "No valid token, or its account changed since it was issued (deactivated, another role, a new " +
        "password) or is gone",
      404: "Unknown student (or not a student)",
      422: "Idempotency-Key reused with another body",
      503: "The database is unavailable or busy, or the connection was lost mid-update without an " +
        "Idempotency-Key (the change may or may not have been applied); see Retry-After",
    },
    requestHeaders: [{
      name: "Idempotency-Key",
      description: "1-255 printable ASCII characters without spaces, per caller, kept 24 h: " +
        "a retry with the same key and body returns the first result and applies nothing",
      schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" },
    }],
    responseHeaders: [{
      name: "Idempotent-Replayed",
      description: "`true` when this is the stored result of an earlier request with the same key",
      schema: { type: "string", enum: ["true"] },
    }],
    example: { student_id: 1, specialization_id: "PLAYER", xp_change: 50 },
  },
  {
    method: "GET",
    path: "/api/v1/health/status",
    summary: "Current integrity status",
    tag: "health",
    roles: ADMIN,
    response: healthReportSchema,
  },
  {
    method: "GET",
    path: "/api/v1/health/metrics",
    summary: "Aggregates and history over a window",
    tag: "health",
    roles: ADMIN,
    query: metricsQuery,
    response: healthMetricsSchema,
  },
  {
    method: "GET",
    path: "/api/v1/health/violations",
    summary: "Violations of the latest check, filtered and paginated",
    tag: "health",
    roles: ADMIN,
    query: violationsQuery,
    response: violationPageSchema,
  },
  {
    method: "POST",
    path: "/api/v1/health/check-now",
    summary: "Run an integrity check now (joins a running one)",
    tag: "health",
    roles: ADMIN,
    body: checkNowBody,
    bodyOptional: true,
    response: checkRecordSchema,
    responses: {
      404: "`user_id` is not a user",
      503: "The check failed (its record says why), or the database is unavailable",
    },
    example: {},
  },
  {
    method: "POST",
    path: "/api/v1/health/violations/repair",
    summary: "Repair desynchronised progress/license pairs (dry run: preview only)",
    tag: "health",
    roles: ADMIN,
    body: repairBody,
    response: repairResultSchema,
    responses: { 404: "`student_id` is not a user" },
    example: { dry_run: true },
  },
  {
    method: "GET",
    path: "/api/v1/health/canary",
    summary: "The canary's metrics over a window (all instances), each with baseline, threshold and verdict",
    tag: "rollout",
    roles: ADMIN,
    query: canaryQuery,
    response: canaryReportSchema,
  },
  {
    method: "GET",
    path: "/api/v1/admin/rollout",
    summary: "The dashboard's rollout percentage and its last change (who, from, to, why)",
    tag: "rollout",
    roles: ADMIN,
    response: rolloutStateSchema,
  },
  {
    method: "PUT",
    path: "/api/v1/admin/rollout",
    summary: "Set the dashboard's rollout percentage (audited with the reason)",
    tag: "rollout",
    roles: ADMIN,
    body: rolloutBody,
    response: rolloutStateSchema,
    responses: {
      401: "No valid token, or its account changed since it was issued (deactivated, another role, a new " +
        "password) or is gone",
    },
    example: { percent: 100, reason: "everyone" },
  },
  {
    method: "GET",
    path: "/api/v1/openapi.json",
    summary: "This document",
    tag: "meta",
    roles: [],
    response: z.looseObject({ openapi: z.literal("3.1.0") }),
    usesDatabase: false,
  },
];

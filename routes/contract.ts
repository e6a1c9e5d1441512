/**
 * The JSON API, one row per endpoint, with the schemas that validate it: the
 * source of the OpenAPI document and of the security tests' route matrix. A
 * test fails when a mounted /api route is missing here or a row is not mounted.
 */
import type { RouteDoc } from "./openapi_document.ts";
import {
  checkNowBody,
  loginBody,
  loginResponse,
  metricsQuery,
  progressUpdateBody,
  progressUpdateResponse,
  repairBody,
  violationsQuery,
} from "./schemas.ts";

const ADMIN = ["ADMIN"] as const;

/** Every endpoint of `/api/v1`. */
export const API_CONTRACT: readonly RouteDoc[] = [
  {
    method: "POST",
    path: "/api/v1/auth/login",
    summary: "Exchange email and password for a bearer token",
    roles: [],
    body: loginBody,
    response: loginResponse,
    responses: { 401: "Wrong credentials or inactive user (one message for all)" },
    example: { email: "admin@levelguard.local", password: "correct horse battery staple" },
  },
  {
    method: "POST",
    path: "/api/v1/specializations/progress/update",
    summary: "Apply an XP change to a student's progress and license, atomically",
    roles: ["ADMIN", "INSTRUCTOR"],
    body: progressUpdateBody,
    response: progressUpdateResponse,
    responses: {
      404: "Unknown student (or not a student)",
      422: "Idempotency-Key reused with another body",
    },
    example: { student_id: 1, specialization_id: "PLAYER", xp_change: 50 },
  },
  { method: "GET", path: "/api/v1/health/status", summary: "Current integrity status", roles: ADMIN },
  {
    method: "GET",
    path: "/api/v1/health/metrics",
    summary: "Aggregates and history over a window",
    roles: ADMIN,
    query: metricsQuery,
  },
  {
    method: "GET",
    path: "/api/v1/health/violations",
    summary: "Violations of the latest check, filtered and paginated",
    roles: ADMIN,
    query: violationsQuery,
  },
  {
    method: "POST",
    path: "/api/v1/health/check-now",
    summary: "Run an integrity check now (joins a running one)",
    roles: ADMIN,
    body: checkNowBody,
    bodyOptional: true,
    example: {},
  },
  {
    method: "POST",
    path: "/api/v1/health/violations/repair",
    summary: "Repair desynchronised progress/license pairs",
    roles: ADMIN,
    body: repairBody,
    example: { dry_run: true },
  },
  { method: "GET", path: "/api/v1/openapi.json", summary: "This document", roles: [] },
];

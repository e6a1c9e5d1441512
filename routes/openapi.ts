/** GET /api/v1/openapi.json, and the SPEC's endpoint table it is built from. */
import { Hono } from "hono";
import {
  buildOpenApi,
  documentedMounted,
  type MountedRoute,
  registerRoutes,
  type RouteDoc,
} from "../lib/openapi.ts";
import {
  checkNowBody,
  loginBody,
  loginResponse,
  metricsQuery,
  progressUpdateBody,
  repairBody,
  rolloutBody,
  violationsQuery,
} from "../lib/schemas.ts";
import type { AppEnv } from "./env.ts";

const ADMIN = ["ADMIN"] as const;

/**
 * The SPEC's JSON API, one row per endpoint, with the schemas that validate
 * it. A router may register its own `RouteDoc` for the same method and path
 * (it wins), and must register any endpoint not listed here: a test fails
 * when a mounted /api route is missing from the document.
 */
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
  { method: "GET", path: "/api/v1/health/canary", summary: "Canary metrics and verdict", roles: ADMIN },
  {
    method: "PUT",
    path: "/api/v1/admin/rollout",
    summary: "Set the dashboard rollout percentage",
    roles: ADMIN,
    body: rolloutBody,
    example: { percent: 0 },
  },
  { method: "GET", path: "/api/v1/openapi.json", summary: "This document", roles: [] },
];

registerRoutes(API_CONTRACT, { contract: true });

/** Serves the document for the routes `mounted()` reports (pass `() => app.routes`). */
export function openapiRoutes(mounted: () => readonly MountedRoute[]) {
  const app = new Hono<AppEnv>();
  let cache: { key: string; body: string } | undefined;
  app.get("/api/v1/openapi.json", (c) => {
    const docs = documentedMounted(mounted());
    const key = docs.map((d) => `${d.method} ${d.path}`).join("\n");
    if (cache?.key !== key) cache = { key, body: JSON.stringify(buildOpenApi(docs)) };
    c.header("Cache-Control", "no-cache");
    return c.body(cache.body, 200, { "Content-Type": "application/json" });
  });
  return app;
}

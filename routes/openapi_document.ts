/**
 * The API's OpenAPI document, built from the contract (routes/contract.ts)
 * and the zod schemas that validate requests (zod 4's JSON Schema output), so
 * documentation and validation cannot drift.
 */
import { z } from "zod";
import type { Role } from "../lib/model.ts";

/** HTTP methods the API uses. */
export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
const METHODS: readonly string[] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/** One endpoint as clients (and the security tests) see it. */
export interface RouteDoc {
  method: Method;
  /** Full path in Hono form (`/api/v1/things/:id`). */
  path: string;
  summary: string;
  /** Roles allowed to call it; empty means public (no token). */
  roles: readonly Role[];
  /** JSON body schema (strict). */
  body?: z.ZodType;
  /** The body may be left out entirely (no body, no Content-Type). */
  bodyOptional?: boolean;
  /** Query-string schema (an object schema). */
  query?: z.ZodType;
  /** Schema of the 200 body, when it has a fixed shape. */
  response?: z.ZodType;
  /** Other statuses this endpoint answers, with what they mean. */
  responses?: Record<number, string>;
  /** A valid request body: documentation, and what the security tests send. */
  example?: unknown;
  /** False for endpoints outside the rate limit. */
  rateLimited?: boolean;
}

/** A route as the router knows it (Hono's `app.routes` entries fit). */
export interface MountedRoute {
  method: string;
  path: string;
}

/** `METHOD /path`, the key routes are compared by. */
export const routeKey = (r: MountedRoute) => `${r.method.toUpperCase()} ${r.path}`;

/** The `/api` endpoints a router has mounted, once each (middleware entries left out). */
export function mountedApiRoutes(routes: readonly MountedRoute[]): MountedRoute[] {
  const seen = new Map<string, MountedRoute>();
  for (const r of routes) {
    const method = r.method.toUpperCase();
    if (!METHODS.includes(method) || !r.path.startsWith("/api/") || r.path.includes("*")) continue;
    seen.set(routeKey(r), { method, path: r.path });
  }
  return [...seen.values()];
}

/** Routes that need a token, for the security matrix. */
export function protectedRoutes(docs: readonly RouteDoc[]): RouteDoc[] {
  return docs.filter((doc) => doc.roles.length > 0);
}

/** RFC 9457 problem, as every error of the API is shaped. */
export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.int(),
  detail: z.string(),
  instance: z.string().optional(),
  request_id: z.string().optional(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })),
});

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

const problemRef = { $ref: "#/components/schemas/Problem" };
const problemResponse = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: problemRef } },
});

function parameters(doc: RouteDoc) {
  const params: JsonSchema[] = [];
  for (const [, name] of doc.path.matchAll(/:([A-Za-z0-9_]+)/g)) {
    params.push({ name, in: "path", required: true, schema: { type: "string" } });
  }
  if (doc.query) {
    const schema = jsonSchema(doc.query, "input");
    const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((schema.required ?? []) as string[]);
    for (const [name, s] of Object.entries(props)) {
      params.push({ name, in: "query", required: required.has(name), schema: s });
    }
  }
  return params;
}

function operation(doc: RouteDoc) {
  const responses: Record<string, unknown> = {
    200: doc.response
      ? { description: "OK", content: { "application/json": { schema: jsonSchema(doc.response, "output") } } }
      : { description: "OK" },
  };
  for (const [status, description] of Object.entries(doc.responses ?? {})) {
    responses[status] = status === "200" ? responses[200] : problemResponse(description);
  }
  if (doc.body || doc.query) responses[400] = problemResponse("Invalid input; `errors` names each field");
  if (doc.roles.length) {
    responses[401] = problemResponse("No token, or a malformed, tampered, expired or foreign token");
    responses[403] = problemResponse(`Valid token without the role (${doc.roles.join(", ")})`);
  }
  if (doc.body) {
    responses[413] = problemResponse("Body over 16 KB");
    responses[415] = problemResponse("Body is not application/json");
  }
  if (doc.rateLimited !== false) responses[429] = problemResponse("Rate limit exceeded; see Retry-After");
  responses[500] = problemResponse("Unexpected error; quote request_id");

  const op: Record<string, unknown> = {
    summary: doc.summary,
    operationId: `${doc.method.toLowerCase()}${
      doc.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c) => (c ?? "").toUpperCase())
    }`,
    security: doc.roles.length ? [{ bearer: [] }] : [],
    "x-roles": doc.roles,
    responses,
  };
  const params = parameters(doc);
  if (params.length) op.parameters = params;
  if (doc.body) {
    op.requestBody = {
      required: !doc.bodyOptional,
      content: {
        "application/json": {
          schema: jsonSchema(doc.body, "input"),
          ...(doc.example === undefined ? {} : { example: doc.example }),
        },
      },
    };
  }
  return op;
}

/** The OpenAPI 3.1 document for `docs`. */
export function buildOpenApi(docs: readonly RouteDoc[]) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const doc of [...docs].sort((a, b) => a.path.localeCompare(b.path))) {
    const path = doc.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
    (paths[path] ??= {})[doc.method.toLowerCase()] = operation(doc);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Levelguard API",
      version: "1",
      description: "Errors are application/problem+json (RFC 9457). Every response carries X-Request-Id.",
    },
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      schemas: { Problem: jsonSchema(problemSchema, "output") },
    },
  };
}

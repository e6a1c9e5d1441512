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

/** A header a route reads or sends, beyond the ones every route has. */
export interface HeaderDoc {
  name: string;
  description: string;
  schema: Record<string, unknown>;
}

/** One endpoint as clients (and the security tests) see it. */
export interface RouteDoc {
  method: Method;
  /** Full path in Hono form (`/api/v1/things/:id`). */
  path: string;
  summary: string;
  /** Groups operations in the document (e.g. `health`). */
  tag: string;
  /** Roles allowed to call it; empty means public (no token). */
  roles: readonly Role[];
  /** JSON body schema (strict). */
  body?: z.ZodType;
  /** The body may be left out entirely (no body, no Content-Type). */
  bodyOptional?: boolean;
  /** Query-string schema (an object schema). */
  query?: z.ZodType;
  /** Schema of the 200 body. */
  response: z.ZodType;
  /** Errors particular to this endpoint (404, 409, 422 ...), with what they mean. */
  responses?: Record<number, string>;
  /** Request headers it reads. */
  requestHeaders?: HeaderDoc[];
  /** Headers of its 200 beyond the common ones. */
  responseHeaders?: HeaderDoc[];
  /** False for endpoints that never touch the database (no 503). */
  usesDatabase?: boolean;
  /** A valid request body: documentation, and what the security tests send. */
  example?: unknown;
}

/** A route as the router knows it (Hono's `app.routes` entries fit). */
export interface MountedRoute {
  method: string;
  path: string;
}

/** `METHOD /path`, the key routes are compared by. */
export const routeKey = (r: MountedRoute) => `${r.method.toUpperCase()} ${r.path}`;

/**
 * The `/api` endpoints a router has mounted, once each: `app.all(path)` counts
 * as `ALL path`; middleware (`use`, on a `*` path) is left out.
 */
export function mountedApiRoutes(routes: readonly MountedRoute[]): MountedRoute[] {
  const seen = new Map<string, MountedRoute>();
  for (const r of routes) {
    const method = r.method.toUpperCase();
    const endpoint = METHODS.includes(method) || method === "ALL";
    if (!endpoint || !r.path.startsWith("/api/") || r.path.includes("*")) continue;
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

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });

// Headers every response of the API carries, and the ones of limits and retries.
const HEADERS: Record<string, { description: string; schema: JsonSchema }> = {
  "X-Request-Id": {
    description:
      "The request's id (the server's own; a valid one from a trusted proxy is kept); quote it when " +
      "reporting a problem",
    schema: { type: "string" },
  },
  "RateLimit-Policy": {
    description: 'The limit per client IP, e.g. `"per-ip";q=100;w=60` (draft-ietf-httpapi-ratelimit-headers)',
    schema: { type: "string" },
  },
  RateLimit: {
    description: 'What is left of the window, e.g. `"per-ip";r=37;t=42`',
    schema: { type: "string" },
  },
  "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer", minimum: 1 } },
  "WWW-Authenticate": { description: 'Always `Bearer realm="levelguard"`', schema: { type: "string" } },
  Allow: { description: "The methods this path serves", schema: { type: "string" } },
};

const headerRefs = (...names: string[]) => Object.fromEntries(names.map((n) => [n, ref("headers", n)]));

// The errors any route can answer, by status: description and the headers they carry.
const PROBLEMS: Record<number, { description: string; headers: string[] }> = {
  400: {
    description:
      "Invalid input (`errors` names each field), or a body the client ended before all of it arrived",
    headers: ["RateLimit-Policy", "RateLimit"],
  },
  401: {
    description: "No token, or a malformed, tampered, expired, future-dated or foreign token, or one whose " +
      "account changed since it was issued (deactivated, another role, a new password) or is gone",
    headers: ["WWW-Authenticate", "RateLimit-Policy", "RateLimit"],
  },
  403: {
    description: "A valid token whose account's role may not do this",
    headers: ["RateLimit-Policy", "RateLimit"],
  },
  404: { description: "Not found", headers: ["RateLimit-Policy", "RateLimit"] },
  405: { description: "Another method of this path; `Allow` lists the served ones", headers: ["Allow"] },
  408: { description: "The body did not arrive within REQUEST_BODY_TIMEOUT_MS", headers: [] },
  413: { description: "Body over 16 KB", headers: [] },
  415: { description: "Body is not application/json", headers: [] },
  422: { description: "Unprocessable request", headers: [] },
  429: {
    description: "Rate limit exceeded; wait `Retry-After` seconds",
    headers: ["Retry-After", "RateLimit-Policy", "RateLimit"],
  },
  500: { description: "Unexpected error; quote request_id", headers: [] },
  503: {
    description: "The database is unavailable or busy, or the server is shutting down and the request was " +
      "still running at the end of its grace period; retry after `Retry-After` seconds",
    headers: ["Retry-After"],
  },
};

function problem(status: number, description?: string) {
  const p = PROBLEMS[status];
  return {
    description: description ?? p.description,
    headers: headerRefs("X-Request-Id", ...p.headers),
    content: { "application/problem+json": { schema: ref("schemas", "Problem") } },
  };
}

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
  for (const h of doc.requestHeaders ?? []) {
    params.push({
      name: h.name,
      in: "header",
      required: false,
      description: h.description,
      schema: h.schema,
    });
  }
  return params;
}

function operation(doc: RouteDoc) {
  const responseHeaders = {
    ...headerRefs("X-Request-Id", "RateLimit-Policy", "RateLimit"),
    ...Object.fromEntries(
      (doc.responseHeaders ?? []).map((h) => [h.name, { description: h.description, schema: h.schema }]),
    ),
  };
  const responses: Record<string, unknown> = {
    200: {
      description: "OK",
      headers: responseHeaders,
      content: { "application/json": { schema: jsonSchema(doc.response, "output") } },
    },
  };
  if (doc.body || doc.query || doc.requestHeaders?.length) responses[400] = problem(400);
  if (doc.roles.length) {
    responses[401] = problem(401);
    responses[403] = problem(403, `A valid token whose account's role is not ${doc.roles.join(" or ")}`);
  }
  for (const [status, description] of Object.entries(doc.responses ?? {})) {
    responses[status] = problem(Number(status), description);
  }
  responses[405] = problem(405);
  if (doc.body) {
    responses[408] = problem(408);
    responses[413] = problem(413);
    responses[415] = problem(415);
  }
  responses[429] ??= problem(429);
  responses[500] = problem(500);
  if (doc.usesDatabase !== false) responses[503] = problem(503);

  const op: Record<string, unknown> = {
    summary: doc.summary,
    operationId: `${doc.method.toLowerCase()}${
      doc.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c) => (c ?? "").toUpperCase())
    }`,
    tags: [doc.tag],
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

/** Tags of the document, with what each groups. */
const TAGS = [
  { name: "auth", description: "Logging in: email and password for a bearer token" },
  { name: "progress", description: "Awarding XP through the coupling enforcer" },
  { name: "health", description: "Integrity checks, their history and violations, repair (ADMIN)" },
  { name: "meta", description: "This document" },
];

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
      description: "Errors are application/problem+json (RFC 9457). Every response carries X-Request-Id. " +
        "Every /api route is rate limited per client IP (RateLimit headers; 429 with Retry-After).",
      license: { name: "Proprietary", url: "https://levelguard.dev/license" },
    },
    servers: [{ url: "/", description: "The Levelguard instance that serves this document" }],
    tags: TAGS,
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      schemas: { Problem: jsonSchema(problemSchema, "output") },
      headers: HEADERS,
    },
  };
}

/**
 * Request validation. `jsonBody` is one step that reads the body once (within
 * its size and time bounds, ./body.ts: 413, 408, and 400 for a body the client
 * cut short) and checks, in order, its media type (415), its JSON syntax (400)
 * and the zod schema (400 naming every bad field). Hono's own
 * `validator("json")` cannot be that step: it throws on an empty JSON body
 * before any hook runs, and optional bodies (check-now) must accept one.
 */
import { zValidator } from "@hono/zod-validator";
import type { Env, MiddlewareHandler } from "hono";
import type { z } from "zod";
import { type FieldError, Invalid } from "../../lib/errors.ts";
import { HttpProblem } from "../problem.ts";
import { readBody } from "./body.ts";

/** Request bodies above this size are refused with 413. */
export const BODY_LIMIT_BYTES = 16 * 1024;

// application/json and application/*+json, with parameters (charset).
const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i;

/** Converts zod issues into field errors (`student_id`, `items.0.name`, or `body`). */
export function fieldErrors(error: { issues: z.core.$ZodIssue[] }): FieldError[] {
  return error.issues.flatMap((issue): FieldError[] => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ field: [...issue.path, key].join("."), message: "Unknown field" }));
    }
    return [{ field: issue.path.join(".") || "body", message: issue.message }];
  });
}

/** Options of `jsonBody`. */
export interface JsonBodyOptions {
  /** Milliseconds the client gets to send the whole body (REQUEST_BODY_TIMEOUT_MS); slower is 408. */
  timeoutMs: number;
  /** No body at all, or an empty one (whatever its Content-Type, as `curl -d ''` sends), counts as `{}`. */
  optional?: boolean;
  limit?: number;
}

const decoder = new TextDecoder();

/** Validates a JSON body against a (strict) schema; the handler reads it with `c.req.valid("json")`. */
export function jsonBody<T extends z.ZodType, E extends Env = Env, P extends string = string>(
  schema: T,
  options: JsonBodyOptions,
): MiddlewareHandler<E, P, { in: { json: z.input<T> }; out: { json: z.output<T> } }> {
  const bounds = { limit: options.limit ?? BODY_LIMIT_BYTES, timeoutMs: options.timeoutMs };
  return async (c, next) => {
    const type = c.req.header("content-type");
    const text = decoder.decode(await readBody(c.req.raw, bounds));
    let value: unknown;
    if (options.optional && text.trim() === "") {
      value = {};
    } else {
      if (type === undefined || !JSON_TYPE.test(type)) {
        throw new HttpProblem(415, "Send the body as application/json");
      }
      try {
        value = JSON.parse(text);
      } catch {
        throw new Invalid("The body is not valid JSON", [{ field: "body", message: "Malformed JSON" }]);
      }
    }
    const result = await schema.safeParseAsync(value);
    if (!result.success) throw new Invalid("The request has invalid fields", fieldErrors(result.error));
    c.req.addValidatedData("json", result.data as object);
    await next();
  };
}

/** Validates the query string against a schema. */
export function query<T extends z.ZodType>(schema: T) {
  return zValidator("query", schema, (result) => {
    if (!result.success) throw new Invalid("The request has invalid fields", fieldErrors(result.error));
  });
}

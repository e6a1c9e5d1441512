/** Request validation: strict zod schemas, problem+json naming every bad field. */
import { zValidator } from "@hono/zod-validator";
import { createMiddleware } from "hono/factory";
import type { z } from "zod";
import { type FieldError, Invalid, UnsupportedMediaType } from "../../lib/errors.ts";

/** Converts zod issues into field errors (`student_id`, `items.0.name`, or `body`). */
export function fieldErrors(error: { issues: z.core.$ZodIssue[] }): FieldError[] {
  return error.issues.flatMap((issue): FieldError[] => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ field: [...issue.path, key].join("."), message: "Unknown field" }));
    }
    return [{ field: issue.path.join(".") || "body", message: issue.message }];
  });
}

function hook(result: { success: boolean; error?: { issues: z.core.$ZodIssue[] } }) {
  if (!result.success && result.error) {
    throw new Invalid("The request has invalid fields", fieldErrors(result.error));
  }
}

/**
 * Checks the body is JSON before validation: a body in another type is 415,
 * malformed JSON is 400. With `optional`, an empty body (with or without
 * a JSON Content-Type) counts as `{}`.
 */
function jsonGuard(optional: boolean) {
  return createMiddleware(async (c, next) => {
    const type = c.req.header("content-type");
    if (!type) {
      const text = await c.req.text();
      if (optional && text.trim() === "") return await next();
      throw new UnsupportedMediaType();
    }
    if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type)) throw new UnsupportedMediaType();
    const text = await c.req.text();
    if (optional && text.trim() === "") {
      // An empty JSON body counts as `{}` too: the validator parses the cached
      // text (Hono caches body promises, whatever its typings say).
      (c.req.bodyCache as { text?: unknown }).text = Promise.resolve("{}");
      return await next();
    }
    try {
      JSON.parse(text);
    } catch {
      throw new Invalid("The body is not valid JSON", [{ field: "body", message: "Malformed JSON" }]);
    }
    await next();
  });
}

/** Validates a JSON body against a (strict) schema. */
export function jsonBody<T extends z.ZodType>(schema: T, options: { optional?: boolean } = {}) {
  return [jsonGuard(options.optional ?? false), zValidator("json", schema, hook)] as const;
}

/** Validates the query string against a schema. */
export function query<T extends z.ZodType>(schema: T) {
  return zValidator("query", schema, hook);
}

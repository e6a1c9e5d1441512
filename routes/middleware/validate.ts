/**
 * Request validation. `jsonBody` is one step that reads the body once and
 * checks, in order, its size (413), its media type (415), its JSON syntax
 * (400) and the zod schema (400 naming every bad field). Hono's own
 * `validator("json")` cannot be that step: it throws on an empty JSON body
 * before any hook runs, and optional bodies (check-now) must accept one.
 */
import { zValidator } from "@hono/zod-validator";
import type { Env, MiddlewareHandler } from "hono";
import type { z } from "zod";
import { type FieldError, Invalid } from "../../lib/errors.ts";
import { HttpProblem } from "../problem.ts";

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

function tooLarge(limit: number) {
  return new HttpProblem(413, `The request body must be at most ${limit} bytes`);
}

/** Reads the body as text, refusing it as soon as it passes `limit` bytes (also when streamed). */
async function readCapped(request: Request, limit: number): Promise<string> {
  const declared = request.headers.get("content-length");
  if (Number(declared ?? 0) > limit) throw tooLarge(limit);
  if (!request.body) return "";
  // With a declared length within the limit the runtime reads exactly that (its fast path);
  // only a body without one (chunked) is read piece by piece against the limit.
  if (declared !== null) return await request.text();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** Options of `jsonBody`. */
export interface JsonBodyOptions {
  /** No body at all, or an empty one (whatever its Content-Type, as `curl -d ''` sends), counts as `{}`. */
  optional?: boolean;
  limit?: number;
}

/** Validates a JSON body against a (strict) schema; the handler reads it with `c.req.valid("json")`. */
export function jsonBody<T extends z.ZodType, E extends Env = Env, P extends string = string>(
  schema: T,
  options: JsonBodyOptions = {},
): MiddlewareHandler<E, P, { in: { json: z.input<T> }; out: { json: z.output<T> } }> {
  const limit = options.limit ?? BODY_LIMIT_BYTES;
  return async (c, next) => {
    const type = c.req.header("content-type");
    const text = await readCapped(c.req.raw, limit);
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

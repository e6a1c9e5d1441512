/**
 * Reading a request's body, the one way every route does it: at most `limit`
 * bytes (413), the whole of it within `timeoutMs` of the first read (408), and
 * a body the client cut short (it closed or reset the connection mid-body) is
 * the client's 400, not a server error counted as a 500.
 *
 * The time bound frees the handler; the socket is the runtime's: Deno.serve
 * (2.9) has no header, body or idle timeout, and keeps a connection whose body
 * never finished open after the 408 until the client closes it (measured: still
 * open 5 s after the answer, as after a request whose headers never end). The
 * proxy in front bounds that (ops/nginx/levelguard.conf: client_header_timeout,
 * client_body_timeout, keepalive_timeout).
 */
import type { MiddlewareHandler } from "hono";
import { HttpProblem } from "../problem.ts";

/** How much of a body, and for how long, a route reads. */
export interface BodyBounds {
  /** Bytes; a longer body is 413. */
  limit: number;
  /** Milliseconds from the first read to the last byte; slower is 408 (REQUEST_BODY_TIMEOUT_MS). */
  timeoutMs: number;
}

const EMPTY = new Uint8Array(new ArrayBuffer(0));

function tooLarge(limit: number) {
  return new HttpProblem(413, `The request body must be at most ${limit} bytes`);
}

/** The 408 of a body slower than `ms`. */
function tooSlow(ms: number) {
  const within = ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
  return new HttpProblem(
    408,
    `The request body did not arrive within ${within}; send the whole body at once`,
  );
}

/** The 400 of a body the client ended early. */
function incomplete() {
  return new HttpProblem(
    400,
    "The request body was incomplete: the connection ended before all of it arrived",
  );
}

/**
 * True for what Deno throws when the client's connection ends mid-body: a half
 * close (`shutdown(SHUT_WR)`), a close or a reset all surface as BadResource
 * ("Cannot read body as underlying resource unavailable") in Deno 2.9.
 */
export function connectionEnded(err: unknown): boolean {
  return err instanceof Deno.errors.BadResource || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.ConnectionAborted || err instanceof Deno.errors.UnexpectedEof;
}

/** Reads a stream to its end, refusing it as soon as it passes `limit` bytes. */
async function readChunks(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let size = 0;
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
  return bytes;
}

/** The whole body of `request` within `bounds` (see the module's comment): 413, 408 or 400 otherwise. */
export async function readBody(
  request: Request,
  { limit, timeoutMs }: BodyBounds,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = request.headers.get("content-length");
  if (Number(declared ?? 0) > limit) throw tooLarge(limit);
  if (!request.body) return EMPTY;
  // With a declared length within the limit the runtime reads exactly that (its fast path);
  // only a body without one (chunked) is read piece by piece against the limit.
  const reader = declared === null ? request.body.getReader() : null;
  const reading = reader ? readChunks(reader, limit) : request.bytes();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(tooSlow(timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([reading, late]);
  } catch (err) {
    if (err instanceof HttpProblem && err.status === 408) {
      // What is still being read is dropped: it fails or ends when the client goes.
      reading.catch(() => {});
      reader?.cancel().catch(() => {});
    }
    throw connectionEnded(err) ? incomplete() : err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads the body once within `bounds` and hands the handlers a copy in memory
 * (as Hono's `bodyLimit` does for a streamed body), so whatever parses it later
 * (`parseBody` for the dashboard's forms) can neither stall nor meet a cut connection.
 */
export function bufferedBody(bounds: BodyBounds): MiddlewareHandler {
  return async (c, next) => {
    if (!c.req.raw.body) return await next();
    const bytes = await readBody(c.req.raw, bounds);
    c.req.raw = new Request(c.req.raw, { body: bytes });
    await next();
  };
}

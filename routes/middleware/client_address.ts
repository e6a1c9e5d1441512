/** The client's address of a request: the socket's peer, or with TRUST_PROXY what our proxy forwarded. */
import type { Context } from "hono";
import { getConnInfo } from "hono/deno";
import { clientAddress } from "../../lib/rate_limit/ip.ts";

/**
 * The socket's peer address. `Deno.serve` hands it to `app.fetch` as the env
 * (`remoteAddr`); tests pass the same shape as `app.request`'s third argument.
 */
export function peerAddress(c: Context): string | undefined {
  if (!(c.env as { remoteAddr?: unknown } | undefined)?.remoteAddr) return undefined;
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

/** The client's address in the shared 128-bit space (see lib/rate_limit/ip.ts), or null when unknown. */
export function requestAddress(c: Context, trustProxy: boolean): bigint | null {
  return clientAddress(peerAddress(c), c.req.header("x-forwarded-for"), trustProxy);
}

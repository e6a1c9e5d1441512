/**
 * What a request says about its client, believed only from the proxies
 * TRUST_PROXY names: the client's address (X-Forwarded-For), whether it came
 * over TLS (X-Forwarded-Proto) and the host it asked for (X-Forwarded-Host).
 * Every reader of a forwarded header goes through here (lib/forwarded.ts
 * decides; this file reads the request).
 */
import type { Context } from "hono";
import { getConnInfo } from "hono/deno";
import { forwardedClient, forwardedValue, isTrustedProxy, type TrustedProxies } from "../../lib/forwarded.ts";
import { parseIp } from "../../lib/rate_limit/ip.ts";

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

// Several middlewares ask per request (request id, headers, limiter): the peer is parsed once.
const parsedPeers = new WeakMap<Request, bigint | null>();

function peer(c: Context): bigint | null {
  let parsed = parsedPeers.get(c.req.raw);
  if (parsed === undefined) {
    const address = peerAddress(c);
    parsed = address === undefined ? null : parseIp(address);
    parsedPeers.set(c.req.raw, parsed);
  }
  return parsed;
}

/** True when the request's socket peer is one of the trusted proxies. */
export function fromTrustedProxy(c: Context, proxies: TrustedProxies): boolean {
  return proxies.length > 0 && isTrustedProxy(peer(c), proxies);
}

/** The client's address in the shared 128-bit space (see lib/rate_limit/ip.ts), or null when unknown. */
export function requestAddress(c: Context, proxies: TrustedProxies): bigint | null {
  if (proxies.length === 0) return peer(c);
  return forwardedClient(peer(c), c.req.header("x-forwarded-for"), proxies);
}

/** True when the client reached us over TLS (directly, or as a trusted proxy's X-Forwarded-Proto says). */
export function isTls(c: Context, proxies: TrustedProxies): boolean {
  if (c.req.url.startsWith("https:")) return true;
  if (proxies.length === 0) return false;
  return forwardedValue(peer(c), c.req.header("x-forwarded-proto"), proxies)?.toLowerCase() === "https";
}

/**
 * The origin the client asked for, `scheme://host[:port]`: the Host header
 * (or a trusted proxy's X-Forwarded-Host) with the scheme `isTls` finds.
 */
export function requestOrigin(c: Context, proxies: TrustedProxies): string {
  const url = new URL(c.req.url);
  const host = forwardedValue(peer(c), c.req.header("x-forwarded-host"), proxies) ?? c.req.header("host") ??
    url.host;
  return `${isTls(c, proxies) ? "https" : url.protocol.replace(":", "")}://${host}`;
}

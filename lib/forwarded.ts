/**
 * Forwarded headers and the proxies allowed to send them (TRUST_PROXY): a
 * request's client, scheme and host are what the socket says, unless the
 * socket's peer is one of the named proxies. Pure: no HTTP framework here.
 */
import { type Cidr, inCidrs, parseIp } from "./rate_limit/ip.ts";

/** The proxies TRUST_PROXY names (empty: forwarded headers are never believed). */
export type TrustedProxies = readonly Cidr[];

/** True when `peer` (the socket's address) is one of the trusted proxies. */
export function isTrustedProxy(peer: bigint | null, proxies: TrustedProxies): boolean {
  return peer !== null && proxies.length > 0 && inCidrs(peer, proxies);
}

// An X-Forwarded-For entry: an address, optionally with a port as some proxies write it
// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
function forwardedEntry(entry: string): bigint | null {
  const text = entry.trim();
  const v6 = /^\[([^\]]+)\]:\d{1,5}$/.exec(text);
  if (v6) return parseIp(v6[1]);
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(text);
  return parseIp(v4 ? v4[1] : text);
}

/**
 * The client of a request. From an untrusted peer (or with no proxies named)
 * it is the peer, whatever X-Forwarded-For says. From a trusted proxy,
 * X-Forwarded-For is walked right to left past the trusted hops: the first
 * untrusted address is the client (entries to its left were written by that
 * client and prove nothing); when every hop is trusted, the left-most is.
 * An entry the walk reaches that is not an address (`unknown`, an RFC 7239
 * obfuscated name, an empty entry) ends it with an unknown client (null):
 * such a request is never taken for loopback or an exempt address, and
 * unknown clients share one rate-limit budget.
 */
export function forwardedClient(
  peer: bigint | null,
  forwardedFor: string | undefined,
  proxies: TrustedProxies,
): bigint | null {
  if (!forwardedFor || !isTrustedProxy(peer, proxies)) return peer;
  const entries = forwardedFor.split(",");
  let client = peer;
  for (let i = entries.length - 1; i >= 0; i--) {
    const hop = forwardedEntry(entries[i]);
    if (hop === null) return null;
    client = hop;
    if (!inCidrs(hop, proxies)) break;
  }
  return client;
}

/**
 * The value of a single-valued forwarded header (X-Forwarded-Proto, -Host)
 * from a trusted proxy: its right-most entry, the one the nearest proxy
 * wrote; undefined from anyone else or when empty.
 */
export function forwardedValue(
  peer: bigint | null,
  header: string | undefined,
  proxies: TrustedProxies,
): string | undefined {
  if (!header || !isTrustedProxy(peer, proxies)) return undefined;
  const value = header.slice(header.lastIndexOf(",") + 1).trim();
  return value === "" ? undefined : value;
}

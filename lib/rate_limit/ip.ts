/** Client addresses for rate limiting: IPv4/IPv6 parsing, CIDR matching and the limiter key. */

// Every address lives in one 128-bit space: IPv4 a.b.c.d is ::ffff:a.b.c.d,
// so IPv4 CIDRs, IPv6 CIDRs and IPv4-mapped IPv6 addresses compare directly.
const V4_MAPPED = 0xffffn << 32n;
const ALL_ONES = (1n << 128n) - 1n;

/** A parsed CIDR block. */
export interface Cidr {
  base: bigint;
  prefix: number;
}

function parseV4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255 || (part.length > 1 && part[0] === "0")) return null;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseV6(text: string): bigint | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const split = (s: string) => s === "" ? [] : s.split(":");
  const head = split(halves[0]);
  const tail = halves.length === 2 ? split(halves[1]) : [];
  const words: bigint[] = [];
  // A dotted quad may only stand last, for the last two groups.
  const push = (list: string[], final: boolean) =>
    list.every((g, i) => {
      if (g.includes(".")) {
        const v4 = final && i === list.length - 1 ? parseV4(g) : null;
        if (v4 === null) return false;
        words.push(v4 >> 16n, v4 & 0xffffn);
        return true;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      words.push(BigInt(parseInt(g, 16)));
      return true;
    });
  if (!push(head, halves.length === 1)) return null;
  const headLen = words.length;
  if (!push(tail, true)) return null;
  if (halves.length === 2) {
    const missing = 8 - words.length;
    if (missing < 1) return null;
    words.splice(headLen, 0, ...Array<bigint>(missing).fill(0n));
  }
  if (words.length !== 8) return null;
  return words.reduce((acc, w) => (acc << 16n) | w, 0n);
}

/** Parses an IPv4 or IPv6 address (brackets and zone ids allowed) into the shared 128-bit space. */
export function parseIp(text: string): bigint | null {
  let s = text.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  s = s.replace(/%[0-9A-Za-z_.-]+$/, "");
  if (s.length === 0 || s.length > 45) return null;
  if (!s.includes(":")) {
    const v4 = parseV4(s);
    return v4 === null ? null : V4_MAPPED | v4;
  }
  return parseV6(s);
}

/** Parses `addr/prefix` (or a bare address, a /32 or /128); null when invalid. */
export function parseCidr(text: string): Cidr | null {
  const [addr, bits, extra] = text.trim().split("/");
  if (extra !== undefined) return null;
  const base = parseIp(addr);
  if (base === null) return null;
  const isV4 = !addr.includes(":");
  const max = isV4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return null;
  const full = isV4 ? prefix + 96 : prefix;
  return { base: base & mask(full), prefix: full };
}

function mask(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL_ONES << BigInt(128 - prefix)) & ALL_ONES;
}

/** True when the address lies in one of the blocks. */
export function inCidrs(address: bigint, cidrs: readonly Cidr[]): boolean {
  return cidrs.some((c) => (address & mask(c.prefix)) === c.base);
}

/**
 * The bucket an address counts against: IPv4 (also IPv4-mapped) per address,
 * IPv6 per /64, since one host usually holds a whole /64 and could rotate.
 */
export function limiterKey(address: bigint | null): string {
  if (address === null) return "unknown";
  if ((address >> 32n) === 0xffffn) {
    const v4 = Number(address & 0xffffffffn);
    return [24, 16, 8, 0].map((shift) => (v4 >>> shift) & 255).join(".");
  }
  const prefix = address >> 64n;
  const words = [48n, 32n, 16n, 0n].map((shift) => ((prefix >> shift) & 0xffffn).toString(16));
  return `${words.join(":")}::/64`;
}

/** Password hashing with scrypt (node:crypto), which runs on a worker thread, off the event loop. */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import type { Admission } from "./admission.ts";

/** scrypt's cost parameters, as a stored hash carries them. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/**
 * N=2^14, r=8, p=5: OWASP's scrypt minimum in its low-memory form (N=2^17,
 * r=8, p=1 or an equivalent). Measured here (2 cores): 210–240 ms per
 * derivation and 16 MiB, against N=2^17, r=8, p=1 at 430–670 ms and 128 MiB
 * (its memory is touched at random, so it also costs twice the time), and the
 * former N=2^14, r=8, p=1 at 55–85 ms. The SPEC's 150 MB RSS budget holds two
 * derivations of 16 MiB at once, not two of 128 MiB. A login storm of one
 * account costs one derivation (lib/verified_passwords.ts), not one per login.
 */
export const PARAMS: ScryptParams = { N: 2 ** 14, r: 8, p: 5 };
const KEY_LENGTH = 32;

// What a stored hash may ask for (older or future settings): up to 128 MiB and 16 lanes, so a
// crafted or corrupt row cannot make one login take gigabytes or minutes.
const MAX_BLOCK_BYTES = 128 * 1024 * 1024;
const MAX_P = 16;

function derive(password: string, salt: Buffer, params: ScryptParams, keyLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize("NFKC"),
      salt,
      keyLength,
      // maxmem: scrypt's own block (128·N·r) plus its p lanes, with room to spare.
      {
        N: params.N,
        r: params.r,
        p: params.p,
        maxmem: 128 * params.N * params.r * 2 + 128 * params.r * params.p,
      },
      (err, key) => err ? reject(err) : resolve(key),
    )
  );
}

/** A stored hash's parts, or null when it is not one of ours (or asks for too much). */
function parse(stored: string): { params: ScryptParams; salt: Buffer; expected: Buffer } | null {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return null;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n >= 1)) return null;
  // N a power of two above 1 (scrypt refuses others); bounded as above.
  if (N < 2 || (N & (N - 1)) !== 0 || 128 * N * r > MAX_BLOCK_BYTES || p > MAX_P) return null;
  const salt = Buffer.from(parts[4], "base64");
  const expected = Buffer.from(parts[5], "base64");
  if (salt.length === 0 || expected.length < 16) return null;
  return { params: { N, r, p }, salt, expected };
}

/**
 * Hashes a password as `scrypt$N$r$p$salt$hash` (base64) with the current
 * parameters (or `params`, for tests of older hashes); with `admission`, the
 * derivation waits for a slot like a login's.
 */
export async function hashPassword(
  password: string,
  options: { params?: ScryptParams; admission?: Admission } = {},
): Promise<string> {
  const params = options.params ?? PARAMS;
  const salt = randomBytes(16);
  const job = () => derive(password, salt, params, KEY_LENGTH);
  const key = options.admission ? await options.admission.run(job) : await job();
  return ["scrypt", params.N, params.r, params.p, salt.toString("base64"), key.toString("base64")].join("$");
}

/**
 * Checks a password against a stored hash in constant time; false for any
 * malformed hash. With `admission`, the derivation waits for a slot (and may
 * be refused with Unavailable when too many are waiting).
 */
export async function verifyPassword(
  password: string,
  stored: string,
  admission?: Admission,
): Promise<boolean> {
  const parsed = parse(stored);
  if (!parsed) return false;
  const { params, salt, expected } = parsed;
  const job = () => derive(password, salt, params, expected.length);
  const key = admission ? await admission.run(job) : await job();
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** True when a well-formed stored hash was made with other parameters than the current ones. */
export function needsRehash(stored: string): boolean {
  const parsed = parse(stored);
  if (!parsed) return false;
  const { N, r, p } = parsed.params;
  return N !== PARAMS.N || r !== PARAMS.r || p !== PARAMS.p || parsed.expected.length !== KEY_LENGTH;
}

/** The current parameters in words, e.g. `scrypt N=2^14, r=8, p=5 (16 MiB)`. */
export function describeParams(params: ScryptParams = PARAMS): string {
  const mib = (128 * params.N * params.r) / (1024 * 1024);
  return `scrypt N=2^${Math.log2(params.N)}, r=${params.r}, p=${params.p} (${mib} MiB)`;
}

/**
 * A hash of a random, forgotten password with the current parameters: checking
 * against it costs what a real check costs, from the very first call. (A test
 * fails if PARAMS change without it.)
 */
export const DUMMY_HASH =
  "scrypt$16384$8$5$oWTPfxhjmWIrsbL9j3WKIw==$Z6TU+cTjnvPXPfP84GzbJG+obSsUtpZIuWkte7W/+H0=";

/** Burns the same time as a real check, so unknown users are not told apart by timing. */
export async function verifyDummy(password: string, admission?: Admission): Promise<false> {
  await verifyPassword(password, DUMMY_HASH, admission);
  return false;
}

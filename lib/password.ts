/** Password hashing with scrypt (node:crypto), which runs on libuv's thread pool, off the event loop. */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import type { Admission } from "./admission.ts";

// N=2^14, r=8, p=1 (16 MiB, ~50 ms on one core here): OWASP's lower scrypt
// setting, chosen so a 1,000-user login storm on 2 cores finishes in ~30 s.
// Stored hashes carry their parameters, so raising them later is safe.
const PARAMS = { N: 2 ** 14, r: 8, p: 1, keyLength: 32 } as const;
const MAX_MEM = 64 * 1024 * 1024;

function derive(password: string, salt: Buffer, p: typeof PARAMS): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize("NFKC"),
      salt,
      p.keyLength,
      { N: p.N, r: p.r, p: p.p, maxmem: MAX_MEM },
      (err, key) => err ? reject(err) : resolve(key),
    )
  );
}

/** Hashes a password as `scrypt$N$r$p$salt$hash` (base64). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, PARAMS);
  return ["scrypt", PARAMS.N, PARAMS.r, PARAMS.p, salt.toString("base64"), key.toString("base64")]
    .join("$");
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
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  if (![N, r, p].every(Number.isSafeInteger) || N > 2 ** 20) return false;
  const salt = Buffer.from(parts[4], "base64");
  const expected = Buffer.from(parts[5], "base64");
  const params = { N, r, p, keyLength: expected.length } as typeof PARAMS;
  const key = admission
    ? await admission.run(() => derive(password, salt, params))
    : await derive(password, salt, params);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * A hash of a random, forgotten password with the current parameters: checking
 * against it costs what a real check costs, from the very first call. (A test
 * fails if PARAMS change without it.)
 */
export const DUMMY_HASH =
  "scrypt$16384$8$1$ImQ+1OZqeHgz/vyEZCk/Xg==$14gQp8pBeoZEvn38dIU+OW8ZfQIwFabyUeEZxf/h+ZQ=";

/** Burns the same time as a real check, so unknown users are not told apart by timing. */
export async function verifyDummy(password: string, admission?: Admission): Promise<false> {
  await verifyPassword(password, DUMMY_HASH, admission);
  return false;
}

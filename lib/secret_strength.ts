/**
 * Whether a signing secret carries real entropy. A simple estimate, written
 * down so that anyone can redo it by hand, not a proof:
 *
 * - the pool is the size of the character classes the secret uses (26 lower-case
 *   letters, 26 upper-case, 10 digits, 33 other printable ASCII, 128 beyond ASCII);
 * - every character is worth log2(pool) bits, except one that repeats what came
 *   before (part of a stretch of 3 or more characters already seen earlier in the
 *   secret, overlaps allowed: `xxxx`, `abcabc`, `passwordpassword`) or continues
 *   a run of 3 or more by steps of +1 or -1 (`abcd`, `4321`): those are worth nothing;
 * - the secret needs at least ENTROPY_BITS_MIN bits by that count and at least
 *   DISTINCT_MIN distinct characters.
 *
 * It overrates a passphrase of dictionary words (each letter counts as random), so
 * it refuses the obvious, not everything weak. `openssl rand -base64 48` (64
 * characters of a 64-symbol alphabet) scores about 380 bits, and never less than
 * 350 in 100,000 draws; 32 random hex digits (openssl rand -hex 16, exactly 128
 * bits) score about 165, and 2 in 10,000 of them are refused (repeats by chance).
 */

/** The HS256 key's minimum, by the estimate: the usual 128-bit security level. */
export const ENTROPY_BITS_MIN = 128;

/** Fewer distinct characters than this is a pattern, whatever its length. */
export const DISTINCT_MIN = 8;

/** How to make a good one (said in every refusal). */
export const MAKE_ONE = "make one with: openssl rand -base64 48";

// Past this, a secret long enough to pass has long passed: the estimate stays cheap (it is quadratic).
const LOOK_AT = 1024;

/** The estimated entropy of `secret`, in bits (see the module's comment). */
export function estimateEntropyBits(secret: string): number {
  const chars = [...secret].slice(0, LOOK_AT);
  const codes = chars.map((c) => c.codePointAt(0)!);
  let literals = 0;
  let i = 0;
  while (i < chars.length) {
    const repeated = longestEarlierMatch(chars, i);
    if (repeated >= 3) {
      i += repeated;
      continue;
    }
    const run = i >= 2 && codes[i] - codes[i - 1] === codes[i - 1] - codes[i - 2] &&
      Math.abs(codes[i] - codes[i - 1]) <= 1;
    if (!run) literals++;
    i++;
  }
  return literals === 0 ? 0 : literals * Math.log2(poolSize(codes));
}

/** Why `secret` is too weak to sign tokens with (a phrase that never quotes it), or null. */
export function secretProblem(secret: string): string | null {
  const distinct = new Set(secret).size;
  if (distinct < DISTINCT_MIN) {
    return `has only ${distinct} distinct characters (at least ${DISTINCT_MIN}); ${MAKE_ONE}`;
  }
  const bits = Math.floor(estimateEntropyBits(secret));
  if (bits < ENTROPY_BITS_MIN) {
    return `is too easy to guess (about ${bits} bits by our estimate, ${ENTROPY_BITS_MIN} needed: ` +
      `repeated parts and runs such as abcd or 1234 count for nothing); ${MAKE_ONE}`;
  }
  return null;
}

/** The length of the longest stretch starting at `i` that also starts at an earlier position. */
function longestEarlierMatch(chars: string[], i: number): number {
  let best = 0;
  for (let j = 0; j < i; j++) {
    let n = 0;
    while (i + n < chars.length && chars[j + n] === chars[i + n]) n++;
    if (n > best) best = n;
  }
  return best;
}

function poolSize(codes: number[]): number {
  const has = (test: (c: number) => boolean) => codes.some(test);
  return (has((c) => c >= 97 && c <= 122) ? 26 : 0) +
    (has((c) => c >= 65 && c <= 90) ? 26 : 0) +
    (has((c) => c >= 48 && c <= 57) ? 10 : 0) +
    (has((c) => c >= 32 && c < 127 && !/[a-zA-Z0-9]/.test(String.fromCharCode(c))) ? 33 : 0) +
    (has((c) => c >= 127 || c < 32) ? 128 : 0);
}

/** A new secret as `openssl rand -base64 48` makes one: 48 random bytes, 64 base64 characters. */
export function randomSecret(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(48))));
}

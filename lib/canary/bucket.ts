/**
 * Stable rollout buckets: every admin falls in bucket 0..99 by a hash of the
 * user id, and is in a rollout of p % when the bucket is below p. Widening
 * from 5 to 25 % keeps the first 5 % in; the hash spreads consecutive ids.
 */

/** The admin's bucket, 0..99 (murmur3's 32-bit finalizer of the id, mod 100). */
export function rolloutBucket(userId: number): number {
  let h = userId >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % 100;
}

/** Whether the admin sees the new dashboard at `percent`. */
export function inRollout(userId: number, percent: number): boolean {
  return rolloutBucket(userId) < percent;
}

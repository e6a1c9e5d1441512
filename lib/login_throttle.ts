/**
 * Per-account sign-in throttling, shared by every instance through
 * `login_failures` (migrations/0013). After a few failures an account's next
 * attempts are refused, before any password check, for an interval that
 * doubles with each further failure up to a cap; a success clears the count.
 * The account is the email as typed, so an unknown email is throttled exactly
 * like a known one (no telling them apart by 429 versus 401).
 */
import type { Queryable } from "./db.ts";
import { Throttled } from "./errors.ts";

/** The numbers of the throttle. */
export interface LoginThrottlePolicy {
  /** Failures in a streak that cost nothing but the failure (typos). */
  freeFailures: number;
  /** A streak ends after this many seconds without a failure. */
  quietSeconds: number;
  /** The refusal after the last free failure, ms; it doubles with each further failure. */
  firstBlockMs: number;
  /** The longest refusal, ms: what an attacker can cost a real user per attempt. */
  maxBlockMs: number;
}

/**
 * OWASP (Authentication Cheat Sheet): exponential back-off with a cap, reset
 * on success. Five free failures in 15 minutes cover a person's typos; then
 * 1 s, 2 s, 4 s ... 30 s: after ten failures an attacker gets one guess per
 * account every 30 s (120 an hour, from any number of addresses), while a
 * real admin whom an attacker keeps throttled waits at most 30 s per attempt.
 */
export const LOGIN_THROTTLE: LoginThrottlePolicy = {
  freeFailures: 5,
  quietSeconds: 15 * 60,
  firstBlockMs: 1000,
  maxBlockMs: 30_000,
};

/** How long attempts are refused after the `failures`-th failure of a streak (0: not at all). */
export function blockMs(failures: number, policy: LoginThrottlePolicy = LOGIN_THROTTLE): number {
  if (failures < policy.freeFailures) return 0;
  return Math.min(policy.maxBlockMs, policy.firstBlockMs * 2 ** (failures - policy.freeFailures));
}

function refused(seconds: number): Throttled {
  return new Throttled(`Too many failed sign-ins for this account; retry in ${seconds} s`, seconds);
}

/**
 * Lets a sign-in attempt for `email` go on to its password check, or throws
 * Throttled. One indexed read when the account has no failures (the usual
 * case: nothing written). Past the free failures, an attempt takes the
 * account's next interval for itself (a conditional update, so of concurrent
 * attempts on any instance one gets the password check and the others wait).
 * Resolves to whether the account has a failure record (a success clears it).
 */
export async function admitLogin(
  q: Queryable,
  email: string,
  policy: LoginThrottlePolicy = LOGIN_THROTTLE,
): Promise<{ failed: boolean }> {
  const [row] = await q<{ failures: number; recent: boolean; wait_s: number | null }[]>`
    SELECT failures, last_failed_at > now() - make_interval(secs => ${policy.quietSeconds}) AS recent,
      CASE WHEN blocked_until > now()
        THEN greatest(1, ceil(extract(epoch FROM blocked_until - now())))::int END AS wait_s
    FROM login_failures WHERE account = login_account_key(${email})`;
  if (!row) return { failed: false };
  if (row.wait_s !== null) throw refused(row.wait_s);
  if (row.recent && row.failures >= policy.freeFailures) {
    const holdMs = blockMs(row.failures + 1, policy);
    const claimed = await q`
      UPDATE login_failures SET blocked_until = now() + make_interval(secs => ${holdMs / 1000})
      WHERE account = login_account_key(${email}) AND (blocked_until IS NULL OR blocked_until <= now())
      RETURNING 1`;
    if (claimed.length === 0) throw refused(Math.max(1, Math.ceil(holdMs / 1000)));
  }
  return { failed: true };
}

/** Counts a failed sign-in for `email` and refuses the account's next attempts for `blockMs`. */
export async function recordLoginFailure(
  q: Queryable,
  email: string,
  policy: LoginThrottlePolicy = LOGIN_THROTTLE,
): Promise<void> {
  const [{ failures }] = await q<{ failures: number }[]>`
    INSERT INTO login_failures AS f (account, failures, last_failed_at)
    VALUES (login_account_key(${email}), 1, now())
    ON CONFLICT (account) DO UPDATE SET
      failures = CASE WHEN f.last_failed_at > now() - make_interval(secs => ${policy.quietSeconds})
        THEN f.failures + 1 ELSE 1 END,
      last_failed_at = now()
    RETURNING failures`;
  const ms = blockMs(failures, policy);
  if (ms === 0) return;
  // From the failure's time; greatest: of concurrent failures (and the attempt's claim) the longest stands.
  const interval = ms / 1000;
  await q`
    UPDATE login_failures SET blocked_until = greatest(blocked_until, last_failed_at + make_interval(secs => ${interval}))
    WHERE account = login_account_key(${email})`;
}

/** Forgets the failures of `email` after a successful sign-in. */
export async function clearLoginFailures(q: Queryable, email: string): Promise<void> {
  await q`DELETE FROM login_failures WHERE account = login_account_key(${email})`;
}

/** Deletes the records of streaks that have ended (hourly housekeeping); returns how many. */
export async function pruneLoginFailures(
  q: Queryable,
  policy: LoginThrottlePolicy = LOGIN_THROTTLE,
): Promise<number> {
  const deleted = await q`
    DELETE FROM login_failures
    WHERE last_failed_at < now() - make_interval(secs => ${policy.quietSeconds})
      AND (blocked_until IS NULL OR blocked_until < now())`;
  return deleted.count;
}

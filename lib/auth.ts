/** Login: email and password in, access token out; every failure looks the same. */
import type { Admission } from "./admission.ts";
import type { Queryable } from "./db.ts";
import { Unauthenticated } from "./errors.ts";
import {
  admitLogin,
  clearLoginFailures,
  LOGIN_THROTTLE,
  type LoginThrottlePolicy,
  recordLoginFailure,
} from "./login_throttle.ts";
import { verifyDummy, verifyPassword } from "./password.ts";
import type { PasswordUpgrades } from "./password_upgrade.ts";
import type { Role } from "./model.ts";
import { issueToken } from "./tokens.ts";
import type { VerifiedPasswords } from "./verified_passwords.ts";

/** The one message for an unknown email, a wrong password and an inactive account. */
export const LOGIN_FAILED = "Invalid email or password";

/** How a process checks passwords (lib/services.ts builds them once). */
export interface PasswordChecks {
  /** The gate every derivation goes through (lib/admission.ts). */
  gate: Admission;
  /** Successes kept per account and epoch, checks in flight shared (lib/verified_passwords.ts). */
  verified: VerifiedPasswords;
  /** Older hashes upgraded after a successful check (lib/password_upgrade.ts). */
  upgrades: PasswordUpgrades;
}

/**
 * Checks email and password; returns who it is. An unknown email still costs a
 * full password check (against a dummy hash), and an inactive user's password
 * is checked too, so neither is told apart by status, message or timing.
 * Throttled per account first (lib/login_throttle.ts): while an email is
 * refused, no password is derived for it, known or not. With `checks`, a
 * success is kept for the account at its epoch (a kept one answers without a
 * derivation) and an older hash is upgraded; without, every check derives.
 */
export async function authenticate(
  sql: Queryable,
  credentials: { email: string; password: string },
  checks?: PasswordChecks,
  throttle: LoginThrottlePolicy = LOGIN_THROTTLE,
): Promise<{ id: number; role: Role; epoch: number }> {
  const { failed } = await admitLogin(sql, credentials.email, throttle);
  const [user] = await sql<
    { id: number; role: Role; hashed_password: string; is_active: boolean; auth_epoch: number }[]
  >`
    SELECT id, role, hashed_password, is_active, auth_epoch
    FROM users WHERE lower(email) = lower(${credentials.email})`;
  let ok = false;
  if (!user) {
    await verifyDummy(credentials.password, checks?.gate);
  } else if (!checks) {
    ok = await verifyPassword(credentials.password, user.hashed_password);
  } else {
    const account = { id: user.id, epoch: user.auth_epoch, hash: user.hashed_password };
    const checked = await checks.verified.verify(account, credentials.password, user.is_active);
    ok = checked.ok;
    // Only the login whose own derivation proved the password: one upgrade per account, not per login.
    if (ok && user.is_active && checked.derived) {
      checks.upgrades.consider(user.id, user.hashed_password, credentials.password);
    }
  }
  if (!user || !ok || !user.is_active) {
    await recordLoginFailure(sql, credentials.email, throttle);
    throw new Unauthenticated(LOGIN_FAILED);
  }
  // Written only when there was a failure to forget: a sign-in storm of one account writes nothing.
  if (failed) await clearLoginFailures(sql, credentials.email);
  // The epoch the password was checked at: a change since then (even during the check) ends the token.
  return { id: user.id, role: user.role, epoch: user.auth_epoch };
}

/** Checks the credentials and issues an access token for the API. */
export async function login(
  sql: Queryable,
  key: Uint8Array,
  ttlSeconds: number,
  credentials: { email: string; password: string },
  checks?: PasswordChecks,
): Promise<{ token: string; expiresIn: number }> {
  const user = await authenticate(sql, credentials, checks);
  return await issueToken(key, { userId: user.id, role: user.role, epoch: user.epoch }, ttlSeconds);
}

/**
 * Dashboard sessions: a random token in an HttpOnly cookie, its SHA-256 in
 * `admin_sessions` (shared by every instance), a per-session CSRF token, an
 * absolute expiry. A session is only as good as its user: deactivated,
 * demoted or given a new password, the account's sessions are deleted in the
 * same transaction (the trigger of migration 0012, whoever writes the row), so
 * the next request, on any instance, finds none.
 */
import { LOGIN_FAILED } from "./auth.ts";
import { encodeBase64Url } from "./encoding.ts";
import { Unauthenticated } from "./errors.ts";
import type { Queryable } from "./db.ts";
import type { Role } from "./model.ts";

/** A live session as a request sees it. */
export interface Session {
  tokenHash: string;
  userId: number;
  role: Role;
  email: string;
  fullName: string;
  csrfToken: string;
  expiresAt: Date;
  /** The account's epoch (lib/accounts.ts): open streams end once it moves on. */
  epoch: number;
}

function randomToken(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

async function hash(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return encodeBase64Url(new Uint8Array(digest));
}

/**
 * Opens a session for `userId`; returns the cookie's token (never stored) and
 * the CSRF token. Throws Unauthenticated unless the account is an active ADMIN
 * at `epoch` (the one its password was checked at; any epoch when not given).
 * The account's row is share-locked meanwhile, so a change committing at the
 * same moment either comes first (no session) or waits and ends this one.
 */
export async function createSession(
  q: Queryable,
  userId: number,
  ttlSeconds: number,
  epoch?: number,
): Promise<{ token: string; csrfToken: string; expiresAt: Date }> {
  const token = randomToken();
  const csrfToken = randomToken();
  const [row] = await q<{ expires_at: Date }[]>`
    INSERT INTO admin_sessions (token_hash, user_id, csrf_token, expires_at)
    SELECT ${await hash(token)}, id, ${csrfToken}, now() + make_interval(secs => ${ttlSeconds})
    FROM users
    WHERE id = ${userId} AND is_active AND role = 'ADMIN'
      ${epoch === undefined ? q`` : q`AND auth_epoch = ${epoch}`}
    FOR SHARE
    RETURNING expires_at`;
  if (!row) throw new Unauthenticated(LOGIN_FAILED);
  return { token, csrfToken, expiresAt: row.expires_at };
}

/** The session of a cookie token, or null when unknown, expired, or its user is inactive. */
export async function findSession(q: Queryable, token: string): Promise<Session | null> {
  if (!/^[A-Za-z0-9_-]{20,100}$/.test(token)) return null;
  const [row] = await q<{
    token_hash: string;
    user_id: number;
    role: Role;
    email: string;
    full_name: string;
    csrf_token: string;
    expires_at: Date;
    auth_epoch: number;
  }[]>`
    SELECT s.token_hash, s.user_id, u.role, u.email, u.full_name, s.csrf_token, s.expires_at, u.auth_epoch
    FROM admin_sessions s JOIN users u ON u.id = s.user_id
    WHERE s.token_hash = ${await hash(token)} AND s.expires_at > now() AND u.is_active`;
  if (!row) return null;
  return {
    tokenHash: row.token_hash,
    userId: row.user_id,
    role: row.role,
    email: row.email,
    fullName: row.full_name,
    csrfToken: row.csrf_token,
    expiresAt: row.expires_at,
    epoch: row.auth_epoch,
  };
}

/** True while the session of `tokenHash` holds (not ended, not expired, its user an active ADMIN). */
export async function sessionLive(q: Queryable, tokenHash: string): Promise<boolean> {
  const rows = await q`
    SELECT 1 FROM admin_sessions s JOIN users u ON u.id = s.user_id
    WHERE s.token_hash = ${tokenHash} AND s.expires_at > now() AND u.is_active AND u.role = 'ADMIN'`;
  return rows.length > 0;
}

/** Ends a session (logout). */
export async function endSession(q: Queryable, tokenHash: string): Promise<void> {
  await q`DELETE FROM admin_sessions WHERE token_hash = ${tokenHash}`;
}

/** Deletes expired sessions; returns how many. */
export async function pruneSessions(q: Queryable): Promise<number> {
  const result = await q`DELETE FROM admin_sessions WHERE expires_at < now()`;
  return result.count;
}

/** Compares two secrets in constant time. */
export function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Login: email and password in, access token out; every failure looks the same. */
import type { Queryable } from "./db.ts";
import { Unauthorized } from "./errors.ts";
import { verifyDummy, verifyPassword } from "./password.ts";
import { issueToken, type Role } from "./tokens.ts";

/** The one message for an unknown email, a wrong password and an inactive account. */
export const LOGIN_FAILED = "Invalid email or password";

/** The SPEC's login response. */
export interface LoginResult {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
}

/**
 * Checks the credentials and issues a token. An unknown email still costs a
 * full password check (against a dummy hash), and an inactive user's password
 * is checked too, so neither is told apart by status, message or timing.
 */
export async function login(
  sql: Queryable,
  key: Uint8Array,
  ttlSeconds: number,
  credentials: { email: string; password: string },
): Promise<LoginResult> {
  const [user] = await sql<{ id: number; role: Role; hashed_password: string; is_active: boolean }[]>`
    SELECT id, role, hashed_password, is_active FROM users WHERE lower(email) = lower(${credentials.email})`;
  const ok = user
    ? await verifyPassword(credentials.password, user.hashed_password)
    : await verifyDummy(credentials.password);
  if (!user || !ok || !user.is_active) throw new Unauthorized(LOGIN_FAILED);
  const { token, expiresIn } = await issueToken(key, { userId: user.id, role: user.role }, ttlSeconds);
  return { access_token: token, token_type: "bearer", expires_in: expiresIn };
}

/** Setting an admin's password again (the way back in when the printed one is lost). */
import type { Queryable } from "./db.ts";
import { NotFound, UsageError } from "./errors.ts";
import { hashPassword } from "./password.ts";

/** At least this long, like SEED_ADMIN_PASSWORD. */
export const MIN_PASSWORD_LENGTH = 8;

/**
 * Sets the password of the admin `email`, or of the only admin when `email`
 * is not given; re-activates nothing and prints nothing. Returns the email.
 */
export async function setAdminPassword(q: Queryable, password: string, email?: string): Promise<string> {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new UsageError(`the password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const admins = await q<{ id: number; email: string }[]>`
    SELECT id, email FROM users
    WHERE role = 'ADMIN' ${email ? q`AND lower(email) = lower(${email})` : q``}
    ORDER BY id`;
  if (admins.length === 0) {
    throw new NotFound(
      email
        ? `no admin with email ${email}`
        : "there is no admin account; create one with deno task admin:create --email E",
    );
  }
  if (admins.length > 1) {
    throw new UsageError(`there are ${admins.length} admins; choose one with --email`);
  }
  const hash = await hashPassword(password);
  await q`UPDATE users SET hashed_password = ${hash}, updated_at = now() WHERE id = ${admins[0].id}`;
  return admins[0].email;
}

/** Creating an admin account (the first one on a production database, which has no seed). */
import { MIN_PASSWORD_LENGTH } from "./admin_password.ts";
import type { Queryable } from "./db.ts";
import { Conflict, UsageError } from "./errors.ts";
import { hashPassword } from "./password.ts";

/**
 * Creates an active ADMIN; returns its id. Throws Conflict when an account
 * with this email exists in any case (emails are unique regardless of case),
 * and changes nothing then.
 */
export async function createAdmin(
  q: Queryable,
  account: { email: string; fullName?: string; password: string },
): Promise<number> {
  if (account.password.length < MIN_PASSWORD_LENGTH) {
    throw new UsageError(`the password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const hash = await hashPassword(account.password);
  const [row] = await q<{ id: number }[]>`
    INSERT INTO users (email, hashed_password, full_name, role)
    VALUES (${account.email}, ${hash}, ${account.fullName ?? ""}, 'ADMIN')
    ON CONFLICT DO NOTHING
    RETURNING id`;
  if (!row) throw new Conflict(`an account with email ${account.email} already exists; nothing changed`);
  return row.id;
}

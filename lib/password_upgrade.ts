/**
 * Older password hashes are upgraded on the next successful login: the
 * password the user has just proved is hashed again with the current
 * parameters (lib/password.ts) and stored, in the background (the login does
 * not wait for a second derivation) and through the same gate as logins (a
 * storm of upgrades is bounded like one of logins; one refused is tried again
 * at the next login).
 *
 * The update is flagged as a rehash (`levelguard.password_rehash`, migration
 * 0015), so the account's epoch stays: the same password keeps its tokens and
 * dashboard sessions. It is written only over the hash that was checked: a
 * password changed meanwhile is never overwritten with the old one.
 */
import type { Admission } from "./admission.ts";
import { transaction } from "./connection.ts";
import type { Sql } from "./db.ts";
import { errorFields, log } from "./log.ts";
import { hashPassword, needsRehash } from "./password.ts";

/** Writes `next` over `previous` as a rehash; true when it was written (the hash was still `previous`). */
export async function storeRehash(
  sql: Sql,
  userId: number,
  previous: string,
  next: string,
): Promise<boolean> {
  return await transaction(sql, async (tx) => {
    await tx`SELECT set_config('levelguard.password_rehash', 'on', true)`;
    const result = await tx`
      UPDATE users SET hashed_password = ${next} WHERE id = ${userId} AND hashed_password = ${previous}`;
    return result.count === 1;
  });
}

/** Hash upgrades in the background, one at a time per account. */
export class PasswordUpgrades {
  readonly #pending = new Map<number, Promise<void>>();
  #upgraded = 0;

  constructor(private readonly sql: Sql, private readonly gate?: Admission) {}

  /** Hashes upgraded by this process. */
  get upgraded(): number {
    return this.#upgraded;
  }

  /**
   * After a successful check of `password` against `stored`: upgrades the
   * hash when its parameters are not the current ones (without waiting).
   */
  consider(userId: number, stored: string, password: string): void {
    if (!needsRehash(stored) || this.#pending.has(userId)) return;
    const upgrade = this.#upgrade(userId, stored, password).finally(() => this.#pending.delete(userId));
    this.#pending.set(userId, upgrade);
  }

  /** Resolves once every upgrade started so far has ended (tests; shutdown). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending.values());
  }

  async #upgrade(userId: number, stored: string, password: string): Promise<void> {
    try {
      const next = await hashPassword(password, { admission: this.gate });
      if (await storeRehash(this.sql, userId, stored, next)) this.#upgraded++;
    } catch (err) {
      // Shed by the gate, or the database is away: the next successful login tries again.
      log("warn", "a password hash could not be upgraded; the next sign-in tries again", {
        user_id: userId,
        ...errorFields(err),
      });
    }
  }
}

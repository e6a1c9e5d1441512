/**
 * Successful password checks, kept for a few minutes per account (as
 * Elasticsearch's realm cache does, `cache.hash_algo`), and concurrent checks
 * of the same password for the same account run as one derivation (single
 * flight). A login storm of one account (the load plan logs 1,000 users in as
 * the same admin within 20 s) then costs one derivation of ~230 ms instead of
 * a thousand, and a client that never retries is never shed.
 *
 * What is kept: per account, the epoch the password was checked at and an
 * HMAC-SHA256 of the password under a random key of this process (never the
 * password, and nothing another process or a memory dump could check a guess
 * against without the key). An entry counts only while the account is at the
 * same epoch, read from `users` by the very login that asks: a password
 * change, a deactivation or a role change moves the epoch (migration 0012),
 * so the entry ends at once on every instance, whatever this one has heard.
 * Changes heard through `Accounts` also drop the entry, so no digest of an
 * old password stays in memory. A failed check is never kept: every wrong
 * password costs a full derivation, after the per-account throttle
 * (lib/login_throttle.ts) has let it through.
 *
 * The residual risk: a kept password is answered in microseconds instead of
 * ~230 ms, so timing tells whoever already sends the right password that it
 * was used in the last few minutes. Nothing is told about a wrong one.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Admission } from "./admission.ts";
import { verifyPassword } from "./password.ts";

/** Options of `VerifiedPasswords`. */
export interface VerifiedPasswordsOptions {
  /** How long a successful check is kept, ms (0: nothing is kept; single flight still applies). */
  ttlMs: number;
  /** Accounts kept at most (the oldest check goes first). */
  capacity?: number;
  /** The clock (tests move it). */
  now?: () => number;
}

/** The account a password is checked for, as its `users` row is now. */
export interface PasswordAccount {
  id: number;
  /** `users.auth_epoch`, read with the hash. */
  epoch: number;
  /** `users.hashed_password`. */
  hash: string;
}

interface Entry {
  epoch: number;
  digest: Buffer;
  expiresAt: number;
}

/** Kept successful checks and checks in flight (see the module's comment). */
export class VerifiedPasswords {
  readonly #key = randomBytes(32);
  readonly #entries = new Map<number, Entry>();
  readonly #flights = new Map<string, Promise<boolean>>();
  readonly #capacity: number;
  readonly #now: () => number;
  #derivations = 0;
  #hits = 0;
  #joined = 0;

  constructor(private readonly gate: Admission, private readonly options: VerifiedPasswordsOptions) {
    this.#capacity = options.capacity ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Derivations run for accounts (not counting dummy checks of unknown emails, nor refused ones). */
  get derivations(): number {
    return this.#derivations;
  }

  /** Checks answered from a kept success. */
  get hits(): number {
    return this.#hits;
  }

  /** Checks that joined one in flight for the same account and password. */
  get joined(): number {
    return this.#joined;
  }

  /** Accounts with a kept success. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Whether `password` is the account's: from a kept success at the same
   * epoch, else from the check in flight for the same account and password,
   * else from a derivation (through the gate: it may wait, or throw
   * Unavailable). `derived` is true for the one caller whose own derivation
   * answered (it may upgrade the hash). `keep`: whether a success may be kept
   * (not for an inactive account, whose login fails anyway).
   */
  async verify(
    account: PasswordAccount,
    password: string,
    keep = true,
  ): Promise<{ ok: boolean; derived: boolean }> {
    const digest = this.#digest(account, password);
    const entry = this.#entries.get(account.id);
    if (entry) {
      const live = entry.expiresAt > this.#now();
      if (live && entry.epoch === account.epoch && timingSafeEqual(entry.digest, digest)) {
        this.#hits++;
        return { ok: true, derived: false };
      }
      // Expired, or the account has moved on. (A login that read its row before a change that
      // another has already seen leaves the newer entry alone.)
      if (!live || entry.epoch < account.epoch) this.#entries.delete(account.id);
    }
    const flightKey = `${account.id}:${account.epoch}:${digest.toString("base64")}`;
    const inFlight = this.#flights.get(flightKey);
    if (inFlight) {
      this.#joined++;
      return { ok: await inFlight, derived: false };
    }
    const flight = this.#derive(account, password, digest, keep);
    this.#flights.set(flightKey, flight);
    try {
      return { ok: await flight, derived: true };
    } finally {
      this.#flights.delete(flightKey);
    }
  }

  /** Drops an account's kept success (its account changed). */
  forget(userId: number): void {
    this.#entries.delete(userId);
  }

  async #derive(account: PasswordAccount, password: string, digest: Buffer, keep: boolean) {
    const ok = await verifyPassword(password, account.hash, this.gate);
    // Counted once it ran (a check the gate refused derived nothing).
    this.#derivations++;
    const newer = (this.#entries.get(account.id)?.epoch ?? -1) > account.epoch;
    if (ok && keep && this.options.ttlMs > 0 && !newer) {
      // Re-inserted last: the Map's order is the order of checks, oldest first.
      this.#entries.delete(account.id);
      this.#entries.set(account.id, {
        epoch: account.epoch,
        digest,
        expiresAt: this.#now() + this.options.ttlMs,
      });
      if (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value!);
    }
    return ok;
  }

  /** HMAC-SHA256 of the password, bound to the account and epoch (µs; a derivation is ~230 ms). */
  #digest(account: PasswordAccount, password: string): Buffer {
    return createHmac("sha256", this.#key).update(`${account.id}\0${account.epoch}\0`).update(password)
      .digest();
  }
}

/**
 * Access tokens: HS256 JWTs with pinned algorithm, issuer and a small clock
 * tolerance, carrying the account's epoch (`ep`, lib/accounts.ts) so that a
 * later activation, role or password change ends them.
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { type Role, ROLES } from "./model.ts";

/** The issuer every token carries and every check demands. */
export const ISSUER = "levelguard";
const CLOCK_TOLERANCE_S = 5;

/** Who a verified token speaks for (as far as its claims go: the account decides, lib/accounts.ts). */
export interface Principal {
  userId: number;
  role: Role;
  /** The account's `auth_epoch` when the token was issued (claim `ep`). */
  epoch: number;
}

/** Signs a token for a user; returns it with its lifetime in seconds. */
export async function issueToken(
  key: Uint8Array,
  principal: Principal,
  ttlSeconds: number,
): Promise<{ token: string; expiresIn: number }> {
  const token = await new SignJWT({ role: principal.role, ep: principal.epoch })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(String(principal.userId))
    .setIssuer(ISSUER)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key);
  return { token, expiresIn: ttlSeconds };
}

/**
 * Verifies a token; null for anything invalid (malformed, tampered, alg none,
 * wrong issuer, expired, issued in the future, or without an epoch: issued
 * before tokens carried one).
 */
export async function verifyToken(
  key: Uint8Array,
  token: string,
  now = new Date(),
): Promise<Principal | null> {
  try {
    const { payload } = await jwtVerify(token, key, {
      currentDate: now,
      algorithms: ["HS256"],
      issuer: ISSUER,
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ["sub", "iat", "exp"],
    });
    // jose checks `iat` only against a maximum age: a token "issued" later than now is ours to refuse.
    if ((payload.iat as number) > now.getTime() / 1000 + CLOCK_TOLERANCE_S) return null;
    const userId = Number(payload.sub);
    const role = payload.role as Role;
    const epoch = payload.ep;
    if (
      !Number.isSafeInteger(userId) || userId <= 0 || !(ROLES as readonly string[]).includes(role) ||
      typeof epoch !== "number" || !Number.isSafeInteger(epoch) || epoch < 0
    ) {
      return null;
    }
    return { userId, role, epoch };
  } catch (err) {
    if (err instanceof errors.JOSEError || err instanceof TypeError) return null;
    throw err;
  }
}

/**
 * Verified tokens kept for their remaining life, so a client sending the same
 * token thousands of times a second is verified once (HS256 verification was
 * ~90 µs per request, a tenth of a core at 1,000 requests/s). Bounded: the
 * least recently used entry goes first. Only valid tokens are kept; a token is
 * dropped at its expiry (plus the clock tolerance verification allows).
 */
export class VerifiedTokens {
  #entries = new Map<string, { principal: Principal; expiresAtMs: number }>();

  constructor(
    private readonly key: Uint8Array,
    private readonly capacity = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The principal of a valid token, or null. */
  async verify(token: string): Promise<Principal | null> {
    const hit = this.#entries.get(token);
    const now = this.clock();
    if (hit) {
      this.#entries.delete(token);
      if (hit.expiresAtMs > now) {
        this.#entries.set(token, hit); // most recently used last
        return hit.principal;
      }
    }
    const principal = await verifyToken(this.key, token, new Date(now));
    if (!principal) return null;
    const exp = expiryOf(token);
    if (exp !== null) {
      this.#entries.set(token, { principal, expiresAtMs: (exp + CLOCK_TOLERANCE_S) * 1000 });
      if (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value!);
    }
    return principal;
  }

  /** How many tokens are kept. */
  get size(): number {
    return this.#entries.size;
  }
}

/** The `exp` claim of a token that has just been verified (seconds), or null. */
function expiryOf(token: string): number | null {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.exp === "number" ? payload.exp : null;
  } catch {
    return null;
  }
}

/** Access tokens: HS256 JWTs with pinned algorithm, issuer and a small clock tolerance. */
import { errors, jwtVerify, SignJWT } from "jose";
import { type Role, ROLES } from "./model.ts";

/** The issuer every token carries and every check demands. */
export const ISSUER = "levelguard";
const CLOCK_TOLERANCE_S = 5;

/** Who a verified token speaks for. */
export interface Principal {
  userId: number;
  role: Role;
}

/** Signs a token for a user; returns it with its lifetime in seconds. */
export async function issueToken(
  key: Uint8Array,
  principal: Principal,
  ttlSeconds: number,
): Promise<{ token: string; expiresIn: number }> {
  const token = await new SignJWT({ role: principal.role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(String(principal.userId))
    .setIssuer(ISSUER)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key);
  return { token, expiresIn: ttlSeconds };
}

/** Verifies a token; null for anything invalid (malformed, tampered, alg none, wrong issuer, expired). */
export async function verifyToken(key: Uint8Array, token: string): Promise<Principal | null> {
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ["HS256"],
      issuer: ISSUER,
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ["sub", "iat", "exp"],
    });
    const userId = Number(payload.sub);
    const role = payload.role as Role;
    if (!Number.isSafeInteger(userId) || userId <= 0 || !(ROLES as readonly string[]).includes(role)) {
      return null;
    }
    return { userId, role };
  } catch (err) {
    if (err instanceof errors.JOSEError || err instanceof TypeError) return null;
    throw err;
  }
}

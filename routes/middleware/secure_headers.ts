/** Security headers on every response: Hono's secureHeaders, a strict CSP, HSTS over TLS only. */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { secureHeaders as honoSecureHeaders } from "hono/secure-headers";

/** One year, subdomains included: sent only when the request came over TLS. */
export const HSTS = "max-age=31536000; includeSubDomains";

// Everything from our own origin, nothing inline, nothing framed. Pages load
// htmx and CSS from /static; no script or style attribute runs inline.
const CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", "data:"],
  fontSrc: ["'self'"],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
};

/** True when the client reached us over TLS (directly, or via a trusted proxy's X-Forwarded-Proto). */
export function isTls(c: Context, trustProxy: boolean): boolean {
  if (new URL(c.req.url).protocol === "https:") return true;
  if (!trustProxy) return false;
  const proto = c.req.header("x-forwarded-proto")?.split(",")[0].trim().toLowerCase();
  return proto === "https";
}

/** The headers middleware; mount it first so error and 429 responses get the headers too. */
export function secureHeaders(options: { trustProxy: boolean }) {
  const base = honoSecureHeaders({
    contentSecurityPolicy: CSP,
    // Set below, only over TLS: HSTS on plain HTTP is ignored at best.
    strictTransportSecurity: false,
    xFrameOptions: "DENY",
    referrerPolicy: "no-referrer",
    permissionsPolicy: { camera: [], microphone: [], geolocation: [], payment: [], usb: [] },
    removePoweredBy: true,
  });
  return createMiddleware(async (c, next) => {
    await base(c, next);
    if (isTls(c, options.trustProxy)) c.res.headers.set("Strict-Transport-Security", HSTS);
    // No fingerprint of the server software.
    c.res.headers.delete("Server");
    c.res.headers.delete("X-Powered-By");
  });
}

/** Security headers on every response: Hono's secureHeaders, a strict CSP, HSTS over TLS only. */
import { createMiddleware } from "hono/factory";
import { secureHeaders as honoSecureHeaders } from "hono/secure-headers";
import type { TrustedProxies } from "../../lib/forwarded.ts";
import { isTls } from "./forwarded.ts";

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

/** The headers middleware; mount it first so error and 429 responses get the headers too. */
export function secureHeaders(options: { trustProxy: TrustedProxies }) {
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

/**
 * Dashboard sessions at the edge: the cookie (`__Host-` prefixed and Secure
 * over TLS; plain on http://localhost, where browsers refuse the prefix),
 * the redirect to the sign-in page, and the per-session CSRF token every POST
 * must carry (form field `_csrf` or header `X-CSRF-Token`), on top of Hono's
 * Origin check.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import type { Sql } from "../../lib/db.ts";
import { Forbidden } from "../../lib/errors.ts";
import { findSession, sameSecret, type Session } from "../../lib/sessions.ts";
import type { TrustedProxies } from "../../lib/forwarded.ts";
import { isTls } from "./forwarded.ts";

/** Context variables of signed-in requests. */
export type SessionEnv = {
  Variables: { requestId: string; session: Session; form?: Record<string, string> };
};

const NAME = "lg_session";
const LOGIN_CSRF = "lg_login";

/** Cookie options for this request: Secure and `__Host-` over TLS. */
function cookieOptions(c: Context, trustProxy: TrustedProxies, maxAge: number) {
  const tls = isTls(c, trustProxy);
  return {
    httpOnly: true,
    sameSite: "Lax" as const,
    path: "/",
    maxAge,
    ...(tls ? { secure: true, prefix: "host" as const } : {}),
  };
}

function cookieName(c: Context, trustProxy: TrustedProxies, name: string) {
  return isTls(c, trustProxy) ? `__Host-${name}` : name;
}

/** Sets the session cookie. */
export function setSessionCookie(c: Context, trustProxy: TrustedProxies, token: string, maxAge: number) {
  setCookie(c, NAME, token, cookieOptions(c, trustProxy, maxAge));
}

/** Removes the session cookie. */
export function clearSessionCookie(c: Context, trustProxy: TrustedProxies) {
  deleteCookie(c, cookieName(c, trustProxy, NAME), { path: "/", secure: isTls(c, trustProxy) });
}

/** The sign-in form's CSRF token: reuses the cookie's, or sets a new one. */
export function loginCsrfToken(c: Context, trustProxy: TrustedProxies): string {
  const existing = getCookie(c, cookieName(c, trustProxy, LOGIN_CSRF));
  if (existing && /^[A-Za-z0-9_-]{20,100}$/.test(existing)) return existing;
  const token = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  setCookie(c, LOGIN_CSRF, token, cookieOptions(c, trustProxy, 3600));
  return token;
}

/** True when the posted token matches the sign-in form's cookie. */
export function loginCsrfMatches(
  c: Context,
  trustProxy: TrustedProxies,
  posted: string | undefined,
): boolean {
  const cookie = getCookie(c, cookieName(c, trustProxy, LOGIN_CSRF));
  return Boolean(cookie && posted && sameSecret(cookie, posted));
}

/** Where a GET came from, as a path to come back to after signing in. */
export function returnPath(c: Context): string {
  const url = new URL(c.req.url);
  return url.pathname + url.search;
}

/** Only our own pages: a `next` that is not a path under /admin/ goes to the dashboard. */
export function safeNext(next: string | undefined): string {
  return next && /^\/admin\/[A-Za-z0-9/_?=&%.-]*$/.test(next) && !next.startsWith("//")
    ? next
    : "/admin/health";
}

/** Who is signed in, as the pages' layout shows them. */
export function viewerOf(c: Context<SessionEnv>): { email: string; csrfToken: string } {
  const { email, csrfToken } = c.get("session");
  return { email, csrfToken };
}

/**
 * Requires a live ADMIN session. Without one: a page request goes to the
 * sign-in page and comes back afterwards; an htmx request is told to go there
 * (`HX-Redirect`). A POST must carry the session's CSRF token.
 */
export function requireSession({ sql, trustProxy }: { sql: Sql; trustProxy: TrustedProxies }) {
  return createMiddleware<SessionEnv>(async (c, next) => {
    const token = getCookie(c, cookieName(c, trustProxy, NAME));
    const session = token ? await findSession(sql, token) : null;
    if (!session || session.role !== "ADMIN") {
      if (token) clearSessionCookie(c, trustProxy);
      const back = c.req.method === "GET" ? returnPath(c) : "/admin/health";
      const login = `/admin/login?next=${encodeURIComponent(back)}`;
      if (c.req.header("hx-request")) {
        c.header("HX-Redirect", login);
        return c.body(null, 401);
      }
      return c.redirect(login, c.req.method === "GET" ? 302 : 303);
    }
    if (c.req.method === "POST") {
      const form = await readForm(c);
      const posted = c.req.header("x-csrf-token") ?? form._csrf;
      if (!posted || !sameSecret(posted, session.csrfToken)) {
        throw new Forbidden(
          "This form has expired or did not come from this site; reload the page and try again",
        );
      }
      c.set("form", form);
    }
    c.set("session", session);
    await next();
  });
}

/**
 * The posted form's fields (urlencoded or multipart; files ignored). The body is in memory by now:
 * bufferedBody (./body.ts) read it within its size and time bounds before the dashboard's handlers.
 */
export async function readForm(c: Context): Promise<Record<string, string>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type)) return {};
  const body = await c.req.parseBody();
  return Object.fromEntries(Object.entries(body).filter(([, v]) => typeof v === "string")) as Record<
    string,
    string
  >;
}

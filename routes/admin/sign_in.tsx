/**
 * Signing in and out of the dashboard: the sign-in form (its own CSRF cookie),
 * a session for admins only, and sign-out, which also ends the session's live
 * streams on this instance. A refused sign-in is the form again with what went
 * wrong, under the status and headers (Retry-After) of the one error mapping.
 */
import { Hono } from "hono";
import { authenticate } from "../../lib/auth.ts";
import { DomainError, Throttled } from "../../lib/errors.ts";
import { createSession, endSession } from "../../lib/sessions.ts";
import { ForbiddenPage, LoginPage } from "../../views/login_page.tsx";
import {
  clearSessionCookie,
  loginCsrfMatches,
  loginCsrfToken,
  readForm,
  safeNext,
  type SessionEnv,
  setSessionCookie,
} from "../middleware/session.ts";
import { problemFor } from "../problem.ts";
import type { AdminDeps, SignedIn } from "./deps.ts";

/** What signing in and out needs. */
export interface SignInDeps extends Pick<AdminDeps, "sql" | "config" | "assets" | "passwordChecks"> {
  signedIn: SignedIn;
  /** Called once a session has ended (its streams close). */
  signedOut: (session: { userId: number; sessionKey: string }) => void;
}

/** GET and POST /admin/login, POST /admin/logout. */
export function signInRoutes({ sql, config, assets, passwordChecks, signedIn, signedOut }: SignInDeps) {
  const trustProxy = config.TRUST_PROXY;
  const app = new Hono<SessionEnv>();

  app.get("/admin/login", (c) => {
    const next = safeNext(c.req.query("next"));
    return c.html(<LoginPage assets={assets} csrfToken={loginCsrfToken(c, trustProxy)} next={next} />);
  });

  app.post("/admin/login", async (c) => {
    const form = await readForm(c);
    const next = safeNext(form.next);
    const again = (status: 400 | 401 | 403 | 429 | 503, error: string, headers?: Record<string, string>) =>
      c.html(
        <LoginPage
          assets={assets}
          csrfToken={loginCsrfToken(c, trustProxy)}
          next={next}
          email={form.email}
          error={error}
        />,
        status,
        headers,
      );
    if (!loginCsrfMatches(c, trustProxy, form._csrf)) {
      return again(403, "The form expired; please sign in again.");
    }
    const email = (form.email ?? "").trim();
    if (!email || !form.password || email.length > 254 || form.password.length > 1024) {
      return again(400, "Enter your email and password.");
    }
    let user;
    try {
      user = await authenticate(sql, { email, password: form.password }, passwordChecks);
    } catch (err) {
      // Wrong credentials (401), a throttled account (429), a full password queue (503): the
      // mapping's status and Retry-After, said on the form (the 401's bearer challenge is the
      // API's, not the form's). Anything else is the error page's.
      const problem = err instanceof DomainError ? problemFor(err) : null;
      if (!problem || ![401, 429, 503].includes(problem.status)) throw err;
      const message = err instanceof Throttled
        ? `Too many failed sign-ins for this account. Wait ${err.retryAfterSeconds} s, then try again.`
        : problem.detail;
      const retryAfter = problem.headers?.["Retry-After"];
      return again(
        problem.status as 401 | 429 | 503,
        message,
        retryAfter ? { "Retry-After": retryAfter } : {},
      );
    }
    if (user.role !== "ADMIN") {
      return c.html(<ForbiddenPage assets={assets} email={email} role={user.role} />, 403);
    }
    // Only for the account as its password was checked (it may have changed since).
    const session = await createSession(sql, user.id, config.SESSION_TTL_SECONDS, user.epoch);
    setSessionCookie(c, trustProxy, session.token, config.SESSION_TTL_SECONDS);
    return c.redirect(next, 303);
  });

  app.post("/admin/logout", signedIn, async (c) => {
    const session = c.get("session");
    await endSession(sql, session.tokenHash);
    // Streams on other instances end at their next keep-alive (they ask the database).
    signedOut({ userId: session.userId, sessionKey: session.tokenHash });
    clearSessionCookie(c, trustProxy);
    return c.redirect("/admin/login", 303);
  });
  return app;
}

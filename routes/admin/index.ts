/**
 * The admin dashboard (HTML), one file per page or concern: signing in
 * (sign_in.tsx), the health page and its parts (health.tsx, with parts.ts and
 * health_view.ts), the CSV export (csv.ts), repair (repair.tsx), the rollout
 * and its gate (rollout.tsx), a student's page (students.tsx) and the live
 * stream (events.ts). Here, what they share: the Origin check and the body
 * bounds before routing, the session, the rollout gate and the streams.
 * Errors become pages in error_page.tsx, from the one mapping (routes/problem.ts).
 */
import { Hono } from "hono";
import { sessionLive } from "../../lib/sessions.ts";
import { bufferedBody } from "../middleware/body.ts";
import { requestOrigin } from "../middleware/forwarded.ts";
import { sameOrigin } from "../middleware/same_origin.ts";
import { requireSession, type SessionEnv } from "../middleware/session.ts";
import { BODY_LIMIT_BYTES } from "../middleware/validate.ts";
import { csvRoutes } from "./csv.ts";
import type { AdminDeps, Dashboard } from "./deps.ts";
import { liveEvents } from "./events.ts";
import { healthPageRoutes } from "./health.tsx";
import { repairRoutes } from "./repair.tsx";
import { rolloutFormRoutes, rolloutGate } from "./rollout.tsx";
import { signInRoutes } from "./sign_in.tsx";
import { studentRoutes } from "./students.tsx";

export type { AdminDeps } from "./deps.ts";

/** The dashboard; mount at "/". */
export function adminRoutes(deps: AdminDeps) {
  const { sql, events, accounts, config, metrics } = deps;
  const app = new Hono<SessionEnv>();

  // Forms post to our own origin only (Hono's Origin check), and small. The check comes before
  // routing: an unsafe method without this site's Origin is 403 on every path, even one that does
  // not serve that method (405 once the Origin is ours), and costs no session lookup.
  app.use("/admin/*", sameOrigin((c) => requestOrigin(c, config.TRUST_PROXY)));
  // Forms are read whole, within the size and time bounds of the JSON API, before any handler.
  app.use("/admin/*", bufferedBody({ limit: BODY_LIMIT_BYTES, timeoutMs: config.REQUEST_BODY_TIMEOUT_MS }));

  const signedIn = requireSession({ sql, trustProxy: config.TRUST_PROXY });
  const dashboard: Dashboard = [signedIn, rolloutGate(deps)];
  const live = liveEvents(events, {
    sessionLive: (key) => sessionLive(sql, key),
    accountChanged: (userId, epoch, fn) => accounts.watch(userId, epoch, fn),
  });
  metrics.countLiveStreams(() => live.open);

  app.get("/admin", (c) => c.redirect("/admin/health"));
  app.route("/", signInRoutes({ ...deps, signedIn, signedOut: (session) => live.closeSession(session) }));
  app.route("/", healthPageRoutes({ ...deps, dashboard }));
  app.route("/", csvRoutes({ ...deps, dashboard }));
  app.route("/", repairRoutes({ ...deps, dashboard }));
  app.route("/", rolloutFormRoutes({ ...deps, signedIn }));
  app.route("/", studentRoutes({ ...deps, dashboard }));
  app.get("/admin/health/events", ...dashboard, (c) => {
    const { userId, tokenHash, epoch } = c.get("session");
    return live.stream(c, { userId, sessionKey: tokenHash, epoch });
  });
  return app;
}

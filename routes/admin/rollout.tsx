/**
 * The dashboard's rollout: the gate that shows health data only to admins in
 * the rollout (the others get the page that says it is not enabled for them),
 * and POST /admin/rollout, whose rules (who may set, advance or roll back, and
 * why not) are lib/canary/dashboard_change.ts; this file maps them.
 */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { inRollout } from "../../lib/canary/bucket.ts";
import { changeFromDashboard } from "../../lib/canary/dashboard_change.ts";
import { rolloutState } from "../../lib/canary/rollout.ts";
import { Forbidden } from "../../lib/errors.ts";
import { NotEnabledPage } from "../../views/rollout_panel.tsx";
import { type SessionEnv, viewerOf } from "../middleware/session.ts";
import type { AdminDeps, SignedIn } from "./deps.ts";

/**
 * Health data only for admins in the rollout; the others get the page that
 * says it is not enabled for them (htmx requests are sent there whole, the
 * event stream is refused).
 */
export function rolloutGate({ sql, rollout, assets }: Pick<AdminDeps, "sql" | "rollout" | "assets">) {
  return createMiddleware<SessionEnv>(async (c, next) => {
    const percent = await rollout.percent();
    if (inRollout(c.get("session").userId, percent)) return await next();
    if (c.req.header("hx-request")) {
      c.header("HX-Redirect", "/admin/health");
      return c.body(null, 204);
    }
    if (c.req.method !== "GET") return c.redirect("/admin/health", 303);
    if (c.req.path === "/admin/health/events") {
      throw new Forbidden("The dashboard is not enabled for this account");
    }
    const state = await rolloutState(sql);
    const rolledBack = state.last_change?.source === "auto-rollback" && state.percent === 0
      ? state.last_change.at
      : null;
    return c.html(
      <NotEnabledPage assets={assets} viewer={viewerOf(c)} percent={percent} rolledBackAt={rolledBack} />,
    );
  });
}

/** What setting the rollout needs. */
export interface RolloutFormDeps extends Pick<AdminDeps, "sql" | "rollout" | "soakHours"> {
  signedIn: SignedIn;
}

/** POST /admin/rollout: set, advance or roll back, for every signed-in admin (advancing: those in the rollout). */
export function rolloutFormRoutes({ sql, rollout, soakHours, signedIn }: RolloutFormDeps) {
  const app = new Hono<SessionEnv>();
  app.post("/admin/rollout", signedIn, async (c) => {
    const { userId, email } = c.get("session");
    const change = await changeFromDashboard(sql, c.get("form") ?? {}, {
      actorId: userId,
      actor: email,
      inRollout: inRollout(userId, await rollout.percent()),
      soakHours,
    });
    rollout.set(change.to);
    return c.redirect(`/admin/health#${inRollout(userId, change.to) ? "rollout" : "rollout-control"}`, 303);
  });
  return app;
}

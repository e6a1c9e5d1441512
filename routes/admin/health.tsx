/**
 * /admin/health, the dashboard's page, and its parts: every part htmx swaps is
 * answered alone when htmx asks for it (`HX-Target`) and as the whole page
 * otherwise, so reload, back and no-JavaScript all get a full page. POST
 * /admin/health/check runs a check now. Pages call lib/ directly (never the JSON API over HTTP).
 */
import { Hono } from "hono";
import { rolloutState } from "../../lib/canary/rollout.ts";
import { canaryReport } from "../../lib/canary/verdict.ts";
import {
  HealthPage,
  HistoryContent,
  LiveContent,
  OtherParts,
  ViolationsContent,
} from "../../views/health_page.tsx";
import { RolloutPanel } from "../../views/rollout_panel.tsx";
import { type SessionEnv, viewerOf } from "../middleware/session.ts";
import type { AdminDeps, Dashboard } from "./deps.ts";
import { healthView } from "./health_view.ts";
import { healthPageParams, partRequested, partState } from "./parts.ts";

/** What the health page needs. */
export interface HealthPageDeps
  extends Pick<AdminDeps, "sql" | "runner" | "config" | "reads" | "assets" | "metrics" | "soakHours"> {
  dashboard: Dashboard;
}

/** GET /admin/health (the page or one part), POST /admin/health/check. */
export function healthPageRoutes(deps: HealthPageDeps) {
  const { sql, runner, assets, metrics, soakHours, dashboard } = deps;
  const app = new Hono<SessionEnv>();

  app.get("/admin/health", ...dashboard, async (c) => {
    const headers = c.req.raw.headers;
    const part = partRequested(headers);
    const state = part ? partState(headers, c.req.query(), part) : { params: c.req.query() };
    if (state.push) c.header("HX-Push-Url", state.push);
    const view = await healthView(deps, state.params, c.get("session").csrfToken);
    switch (part) {
      case "live": {
        // A newer check than the one the page shows: the chart and the table come along.
        const seen = Number(state.params.seen ?? 0);
        const newer = (view.report.last_check?.id ?? 0) !== seen;
        return c.html(
          <>
            <LiveContent view={view} />
            {newer && <OtherParts view={view} />}
          </>,
        );
      }
      case "history-part":
        return c.html(<HistoryContent view={view} />);
      case "violations-part":
        return c.html(<ViolationsContent view={view} />);
      default: {
        metrics.dashboardViews.inc();
        const [report, rollout] = await Promise.all([
          canaryReport(sql, { window: "1h", soakHours }),
          rolloutState(sql),
        ]);
        const panel = (
          <RolloutPanel
            report={report}
            state={rollout}
            csrfToken={c.get("session").csrfToken}
            now={view.now}
          />
        );
        return c.html(<HealthPage view={view} assets={assets} viewer={viewerOf(c)} rollout={panel} />);
      }
    }
  });

  app.post("/admin/health/check", ...dashboard, async (c) => {
    metrics.manualChecks.inc();
    await runner.run("manual");
    if (!c.req.header("hx-request")) {
      const form = c.get("form") ?? {};
      const keep = new URLSearchParams(
        Object.entries(form).filter(([k, v]) => ["window", "kind", "specialization"].includes(k) && v),
      );
      return c.redirect(`/admin/health${keep.size ? `?${keep}` : ""}`, 303);
    }
    // The live panel is the answer; the chart and the table come along out of band.
    const view = await healthView(deps, healthPageParams(c.req.raw.headers), c.get("session").csrfToken);
    return c.html(
      <>
        <LiveContent view={view} />
        <OtherParts view={view} />
      </>,
    );
  });
  return app;
}

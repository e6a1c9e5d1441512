/**
 * The admin dashboard (HTML): sign-in, /admin/health and its parts, repair,
 * /admin/students/:id, the CSV export and the live event stream. Pages call
 * lib/ directly (never the JSON API over HTTP). Every part that htmx swaps is
 * answered alone when htmx asks for it (`HX-Target`) and as the whole page
 * otherwise, so reload, back and no-JavaScript all get a full page.
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { csrf } from "hono/csrf";
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import type { Admission } from "../lib/admission.ts";
import { advanceRefusal } from "../lib/canary/advance.ts";
import { inRollout } from "../lib/canary/bucket.ts";
import { canaryReport } from "../lib/canary/report.ts";
import { rolloutState, setRollout } from "../lib/canary/rollout.ts";
import type { RolloutCache } from "../lib/canary/rollout_cache.ts";
import { authenticate } from "../lib/auth.ts";
import type { Config } from "../lib/config.ts";
import type { Sql } from "../lib/db.ts";
import type { Metrics } from "../lib/metrics.ts";
import { Unauthenticated, Unavailable } from "../lib/errors.ts";
import type { CheckEvents } from "../lib/integrity/events.ts";
import { healthMetrics } from "../lib/integrity/health_metrics.ts";
import { repairAndCheck } from "../lib/integrity/repair.ts";
import { healthReport } from "../lib/integrity/report.ts";
import type { IntegrityRunner } from "../lib/integrity/runner.ts";
import { listViolations, violationsCsv } from "../lib/integrity/violations.ts";
import { SPECIALIZATION_IDS, VIOLATION_KINDS } from "../lib/model.ts";
import { createSession, endSession } from "../lib/sessions.ts";
import { studentDetail } from "../lib/students.ts";
import { requireUser } from "../lib/users.ts";
import {
  HealthPage,
  type HealthView,
  HistoryContent,
  LiveContent,
  OtherParts,
  ViolationsContent,
} from "../views/health_page.tsx";
import type { Assets } from "../views/layout.tsx";
import { ForbiddenPage, LoginPage, MessagePage } from "../views/login_page.tsx";
import { RepairPage, RepairPanel } from "../views/repair_panel.tsx";
import { StudentPage, StudentPairs } from "../views/student_page.tsx";
import { NotEnabledPage, RolloutPanel } from "../views/rollout_panel.tsx";
import { liveEvents } from "./admin_events.ts";
import { isTls } from "./middleware/secure_headers.ts";
import {
  clearSessionCookie,
  loginCsrfMatches,
  loginCsrfToken,
  readForm,
  requireSession,
  safeNext,
  type SessionEnv,
  setSessionCookie,
} from "./middleware/session.ts";

/** What the dashboard needs. */
export interface AdminDeps {
  sql: Sql;
  runner: IntegrityRunner;
  events: CheckEvents;
  config: Pick<
    Config,
    "SCAN_ENABLED" | "SCAN_CRON" | "TRUST_PROXY" | "DASHBOARD_REFRESH_SECONDS" | "SESSION_TTL_SECONDS"
  >;
  assets: Assets;
  passwords: Admission;
  metrics: Metrics;
  rollout: RolloutCache;
  /** CANARY_STEP_HOURS. */
  soakHours: number;
  /** Where heavy reads go (the replica while it is usable). */
  reads: () => Sql;
}

// The page's state lives in its URL; anything else in it is ignored.
const pageQuery = z.object({
  window: z.enum(["1h", "24h", "7d"]).catch("24h"),
  kind: z.enum(VIOLATION_KINDS).optional().catch(undefined),
  specialization: z.enum(SPECIALIZATION_IDS).optional().catch(undefined),
  cursor: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/).optional().catch(undefined),
  repaired: z.coerce.number().int().positive().optional().catch(undefined),
  seen: z.coerce.number().int().optional().catch(undefined),
});

const studentId = z.coerce.number().int().positive().max(2_147_483_647);

/** htmx asks for one part (and is not restoring history, which needs the page). */
function partRequested(c: Context): string | null {
  if (!c.req.header("hx-request") || c.req.header("hx-history-restore-request")) return null;
  return c.req.header("hx-target") ?? null;
}

/** The dashboard; mount at "/". */
export function adminRoutes(
  { sql, runner, events, config, assets, passwords, metrics, rollout, soakHours, reads }: AdminDeps,
) {
  const trustProxy = config.TRUST_PROXY;
  const app = new Hono<SessionEnv>();
  const signedIn = requireSession({ sql, trustProxy });

  /**
   * Health data only for admins in the rollout; the others get the page that
   * says it is not enabled for them (htmx requests are sent there whole).
   */
  const inRolloutOnly = createMiddleware<SessionEnv>(async (c, next) => {
    const percent = await rollout.percent();
    if (inRollout(c.get("session").userId, percent)) return await next();
    if (c.req.header("hx-request")) {
      c.header("HX-Redirect", "/admin/health");
      return c.body(null, 204);
    }
    if (c.req.method !== "GET") return c.redirect("/admin/health", 303);
    if (c.req.path === "/admin/health/events") return c.text("Not enabled for this account", 403);
    const state = await rolloutState(sql);
    const rolledBack = state.last_change?.source === "auto-rollback" && state.percent === 0
      ? state.last_change.at
      : null;
    return c.html(
      <NotEnabledPage assets={assets} viewer={viewer(c)} percent={percent} rolledBackAt={rolledBack} />,
    );
  });
  const dashboard = [signedIn, inRolloutOnly] as const;

  // Forms post to our own origin only (Hono's Origin check), and small.
  app.use(
    "/admin/*",
    csrf({
      origin: (origin, c) => {
        const url = new URL(c.req.url);
        const host = (trustProxy && c.req.header("x-forwarded-host")) || c.req.header("host") || url.host;
        const proto = isTls(c, trustProxy) ? "https" : url.protocol.replace(":", "");
        return origin === `${proto}://${host}`;
      },
    }),
  );
  app.use("/admin/*", bodyLimit({ maxSize: 16 * 1024, onError: (c) => c.text("Request too large", 413) }));
  app.use("/admin/*", async (c, next) => {
    await next();
    if (!c.res.headers.has("Cache-Control")) c.header("Cache-Control", "no-store");
  });

  const viewer = (c: Context<SessionEnv>) => ({
    email: c.get("session").email,
    csrfToken: c.get("session").csrfToken,
  });

  /** The page's data for the state in `params` (the URL's query). */
  async function healthView(c: Context<SessionEnv>, params: Record<string, string>): Promise<HealthView> {
    const q = pageQuery.parse(params);
    const filters = {
      window: q.window === "24h" ? undefined : q.window,
      kind: q.kind,
      specialization: q.specialization,
      cursor: q.cursor,
    };
    const [report, metrics, violations] = await Promise.all([
      healthReport(sql, config, runner.fullCheckRunning),
      healthMetrics(reads(), q.window),
      listViolations(reads(), { kind: q.kind, specialization: q.specialization, cursor: q.cursor, limit: 25 })
        .catch(() => listViolations(reads(), { kind: q.kind, specialization: q.specialization, limit: 25 })),
    ]);
    const notice = q.repaired
      ? `Repair #${q.repaired} is done; the check run after it is shown below.`
      : undefined;
    return {
      now: Date.now(),
      report,
      metrics,
      violations,
      filters,
      refreshSeconds: config.DASHBOARD_REFRESH_SECONDS,
      csrfToken: c.get("session").csrfToken,
      notice,
    };
  }

  app.get("/admin", (c) => c.redirect("/admin/health"));

  // ---- signing in and out ---------------------------------------------------

  app.get("/admin/login", (c) => {
    const next = safeNext(c.req.query("next"));
    return c.html(<LoginPage assets={assets} csrfToken={loginCsrfToken(c, trustProxy)} next={next} />);
  });

  app.post("/admin/login", async (c) => {
    const form = await readForm(c);
    const next = safeNext(form.next);
    const again = (status: 400 | 401 | 403 | 503, error: string) =>
      c.html(
        <LoginPage
          assets={assets}
          csrfToken={loginCsrfToken(c, trustProxy)}
          next={next}
          email={form.email}
          error={error}
        />,
        status,
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
      user = await authenticate(sql, { email, password: form.password }, passwords);
    } catch (err) {
      if (err instanceof Unauthenticated) return again(401, err.message);
      if (err instanceof Unavailable) {
        c.header("Retry-After", String(err.retryAfterSeconds));
        return again(503, err.message);
      }
      throw err;
    }
    if (user.role !== "ADMIN") {
      return c.html(<ForbiddenPage assets={assets} email={email} role={user.role} />, 403);
    }
    const session = await createSession(sql, user.id, config.SESSION_TTL_SECONDS);
    setSessionCookie(c, trustProxy, session.token, config.SESSION_TTL_SECONDS);
    return c.redirect(next, 303);
  });

  app.post("/admin/logout", signedIn, async (c) => {
    const session = c.get("session");
    await endSession(sql, session.tokenHash);
    live.closeSession(session.tokenHash);
    clearSessionCookie(c, trustProxy);
    return c.redirect("/admin/login", 303);
  });

  // ---- the health page and its parts -----------------------------------------

  app.get("/admin/health", ...dashboard, async (c) => {
    const view = await healthView(c, c.req.query());
    switch (partRequested(c)) {
      case "live": {
        // A newer check than the one the page shows: the chart and the table come along.
        const seen = Number(c.req.query("seen") ?? 0);
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
        const [report, state] = await Promise.all([
          canaryReport(sql, { window: "1h", soakHours }),
          rolloutState(sql),
        ]);
        const panel = (
          <RolloutPanel report={report} state={state} csrfToken={c.get("session").csrfToken} now={view.now} />
        );
        return c.html(<HealthPage view={view} assets={assets} viewer={viewer(c)} rollout={panel} />);
      }
    }
  });

  app.get("/admin/health/violations.csv", ...dashboard, (c) => {
    const q = pageQuery.parse(c.req.query());
    const name = ["violations", q.kind, q.specialization].filter(Boolean).join("-").toLowerCase();
    return c.body(violationsCsv(reads(), { kind: q.kind, specialization: q.specialization }), 200, {
      "Content-Type": "text/csv; charset=utf-8",
      "Content-Disposition": `attachment; filename="${name}.csv"`,
    });
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
    const page = new URL(c.req.header("hx-current-url") ?? c.req.url);
    const view = await healthView(c, Object.fromEntries(page.searchParams));
    return c.html(
      <>
        <LiveContent view={view} />
        <OtherParts view={view} />
      </>,
    );
  });

  app.post("/admin/health/repair/preview", ...dashboard, async (c) => {
    const form = c.get("form") ?? {};
    const id = form.student_id ? studentId.safeParse(form.student_id) : null;
    if (id && !id.success) return notFoundPage(c, "No such student.");
    if (id) await requireUser(sql, id.data);
    const result = await repairAndCheck(sql, runner, { studentId: id?.data, dryRun: true, actorId: null });
    const returnTo = id ? `/admin/students/${id.data}` : "/admin/health";
    const panel = <RepairPanel result={result} csrfToken={c.get("session").csrfToken} returnTo={returnTo} />;
    if (c.req.header("hx-request")) return c.html(panel);
    return c.html(<RepairPage assets={assets} viewer={viewer(c)} returnTo={returnTo}>{panel}</RepairPage>);
  });

  app.post("/admin/health/repair", ...dashboard, async (c) => {
    const form = c.get("form") ?? {};
    const id = form.student_id ? studentId.safeParse(form.student_id) : null;
    if (id && !id.success) return notFoundPage(c, "No such student.");
    if (id) await requireUser(sql, id.data);
    const result = await repairAndCheck(sql, runner, {
      studentId: id?.data,
      dryRun: false,
      actorId: c.get("session").userId,
    });
    metrics.recordRepair(result);
    const returnTo = safeNext(form.return_to);
    if (!c.req.header("hx-request")) {
      const sep = returnTo.includes("?") ? "&" : "?";
      return c.redirect(`${returnTo}${sep}repaired=${result.dry_run ? "" : result.audit_id}`, 303);
    }
    const panel = <RepairPanel result={result} csrfToken={c.get("session").csrfToken} returnTo={returnTo} />;
    if (id) return c.html(panel);
    // From the health page: the gauge, the cards, the chart and the table show the repaired state.
    const page = new URL(c.req.header("hx-current-url") ?? c.req.url);
    const view = await healthView(c, Object.fromEntries(page.searchParams));
    return c.html(
      <>
        {panel}
        <section id="live" hx-swap-oob="innerHTML">
          <LiveContent view={view} />
        </section>
        <OtherParts view={view} />
      </>,
    );
  });

  // ---- the rollout -------------------------------------------------------------------

  app.post("/admin/rollout", ...dashboard, async (c) => {
    const form = c.get("form") ?? {};
    const session = c.get("session");
    const report = await canaryReport(sql, { window: "1h", soakHours });
    let to: number;
    if (form.action === "advance") {
      const refused = advanceRefusal(report, false);
      if (refused) {
        return c.html(
          <MessagePage assets={assets} title="Not advanced" message={`Not advanced: ${refused}.`} />,
          409,
        );
      }
      to = report.rollout.next_step!;
    } else if (form.action === "rollback") {
      to = 0;
    } else if (form.action === "set" && /^\d{1,3}$/.test(form.percent ?? "") && Number(form.percent) <= 100) {
      to = Number(form.percent);
    } else {
      return c.html(
        <MessagePage assets={assets} title="Not changed" message="Give a whole percentage from 0 to 100." />,
        400,
      );
    }
    const reason = (form.reason ?? "").toWellFormed().replace(/\p{Cc}/gu, " ").trim().slice(0, 500) ||
      (form.action === "advance"
        ? `advance: canary ${report.verdict}`
        : form.action === "rollback"
        ? "rollback from the dashboard"
        : null);
    await setRollout(sql, {
      percent: to,
      reason,
      source: "dashboard",
      actorId: session.userId,
      actor: session.email,
    });
    rollout.set(to);
    return c.redirect("/admin/health#rollout", 303);
  });

  // ---- one student ---------------------------------------------------------------

  app.get("/admin/students/:id", ...dashboard, async (c) => {
    const id = studentId.safeParse(c.req.param("id"));
    if (!id.success) return notFoundPage(c, "No such student.");
    const student = await studentDetail(sql, id.data).catch(() => null);
    if (!student) return notFoundPage(c, `There is no user #${id.data}.`);
    return c.html(
      <StudentPage student={student} check={null} now={Date.now()} assets={assets} viewer={viewer(c)} />,
    );
  });

  app.post("/admin/students/:id/check", ...dashboard, async (c) => {
    const id = studentId.safeParse(c.req.param("id"));
    if (!id.success) return notFoundPage(c, "No such student.");
    const student = await studentDetail(sql, id.data).catch(() => null);
    if (!student) return notFoundPage(c, `There is no user #${id.data}.`);
    metrics.manualChecks.inc();
    const check = await runner.run("manual", id.data);
    if (!c.req.header("hx-request")) return c.redirect(`/admin/students/${id.data}`, 303);
    const fresh = await studentDetail(sql, id.data);
    return c.html(<StudentPairs student={fresh} check={check} csrfToken={c.get("session").csrfToken} />);
  });

  // ---- live updates ------------------------------------------------------------------

  const live = liveEvents(events);
  metrics.countLiveStreams(() => live.open);
  app.get("/admin/health/events", ...dashboard, (c) => live.stream(c, c.get("session").tokenHash));

  function notFoundPage(c: Context<SessionEnv>, message: string) {
    return c.html(<MessagePage assets={assets} title="Not found" message={message} />, 404);
  }

  return app;
}

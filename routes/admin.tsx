/**
 * The admin dashboard (HTML): sign-in, /admin/health and its parts, repair,
 * /admin/students/:id, the CSV export and the live event stream. Pages call
 * lib/ directly (never the JSON API over HTTP). Every part that htmx swaps is
 * answered alone when htmx asks for it (`HX-Target`) and as the whole page
 * otherwise, so reload, back and no-JavaScript all get a full page.
 */
import { type Context, Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import { advanceRefusal, changedMeanwhile, fromEvaluatedStep } from "../lib/canary/advance.ts";
import { inRollout } from "../lib/canary/bucket.ts";
import { canaryReport } from "../lib/canary/verdict.ts";
import { rolloutPercent, rolloutState, setRollout } from "../lib/canary/rollout.ts";
import type { RolloutCache } from "../lib/canary/rollout_cache.ts";
import type { Accounts } from "../lib/accounts.ts";
import { authenticate, type PasswordChecks } from "../lib/auth.ts";
import type { Config } from "../lib/config.ts";
import type { Sql } from "../lib/db.ts";
import type { Metrics } from "../lib/metrics.ts";
import { Throttled, Unauthenticated, Unavailable } from "../lib/errors.ts";
import type { CheckEvents } from "../lib/integrity/events.ts";
import { healthMetrics } from "../lib/integrity/health_metrics.ts";
import { repairAndCheck } from "../lib/integrity/repair.ts";
import { healthReport } from "../lib/integrity/report.ts";
import type { IntegrityRunner } from "../lib/integrity/runner.ts";
import { listViolations, violationsCsv } from "../lib/integrity/violations.ts";
import { SPECIALIZATION_IDS, VIOLATION_KINDS } from "../lib/model.ts";
import { getCheck } from "../lib/integrity/store.ts";
import { createSession, endSession, sessionLive } from "../lib/sessions.ts";
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
import { query } from "../views/format.ts";
import { NotEnabledPage, RolloutPanel } from "../views/rollout_panel.tsx";
import { liveEvents } from "./admin_events.ts";
import { bufferedBody } from "./middleware/body.ts";
import { requestOrigin } from "./middleware/forwarded.ts";
import { sameOrigin } from "./middleware/same_origin.ts";
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
import { BODY_LIMIT_BYTES } from "./middleware/validate.ts";

/** What the dashboard needs. */
export interface AdminDeps {
  sql: Sql;
  runner: IntegrityRunner;
  events: CheckEvents;
  /** The accounts as they are now: an account that changes ends its live streams at once. */
  accounts: Pick<Accounts, "watch">;
  config: Pick<
    Config,
    | "SCAN_ENABLED"
    | "SCAN_CRON"
    | "TRUST_PROXY"
    | "DASHBOARD_REFRESH_SECONDS"
    | "SESSION_TTL_SECONDS"
    | "REQUEST_BODY_TIMEOUT_MS"
  >;
  assets: Assets;
  passwordChecks: PasswordChecks;
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
const auditOrCheckId = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** htmx asks for one part (and is not restoring history, which needs the page). */
function partRequested(c: Context): string | null {
  if (!c.req.header("hx-request") || c.req.header("hx-history-restore-request")) return null;
  return c.req.header("hx-target") ?? null;
}

/** The path and query of the page htmx asked from (HX-Current-URL), when it is one of ours. */
function currentPage(c: Context): { path: string; params: Record<string, string> } | null {
  try {
    const url = new URL(c.req.header("hx-current-url") ?? "");
    return { path: url.pathname, params: Object.fromEntries(url.searchParams) };
  } catch {
    return null;
  }
}

/** The URL parameters of /admin/health that each part's own links and forms set. */
const PART_OWNS: Record<string, readonly string[]> = {
  "history-part": ["window"],
  "violations-part": ["kind", "specialization", "cursor"],
};

/**
 * The state a part of /admin/health shows. The page's URL is the truth (the
 * containers' hidden inputs may be older than it): a part refreshing itself
 * (the timer or a live event: HX-Trigger is its own id) shows the URL's state
 * and says which check it showed (`seen`); a link or form inside a part
 * changes what that part owns and keeps the rest of the URL, and the whole
 * state is pushed (HX-Push-Url), so reload and back show what is on screen.
 */
function partState(c: Context, target: string): { params: Record<string, string>; push?: string } {
  const page = currentPage(c);
  const asked = c.req.query();
  // Without the page's URL (not sent, or not this page) the request is all there is.
  if (page?.path !== "/admin/health") return { params: asked };
  const owns = PART_OWNS[target];
  if (c.req.header("hx-trigger") === target || !owns) {
    return { params: { ...page.params, ...(asked.seen !== undefined ? { seen: asked.seen } : {}) } };
  }
  const params = { ...page.params };
  for (const key of owns) {
    delete params[key];
    if (key in asked) params[key] = asked[key];
  }
  const q = pageQuery.parse(params);
  const push = `/admin/health${
    query({
      window: q.window === "24h" ? undefined : q.window,
      kind: q.kind,
      specialization: q.specialization,
      cursor: q.cursor,
    })
  }`;
  return { params, push };
}

/** The dashboard; mount at "/". */
export function adminRoutes(
  { sql, runner, events, accounts, config, assets, passwordChecks, metrics, rollout, soakHours, reads }:
    AdminDeps,
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

  // Forms post to our own origin only (Hono's Origin check), and small. The check comes before
  // routing: an unsafe method without this site's Origin is 403 on every path, even one that does
  // not serve that method (405 once the Origin is ours), and costs no session lookup.
  app.use(
    "/admin/*",
    sameOrigin((c) => requestOrigin(c, trustProxy)),
  );
  // Forms are read whole, within the size and time bounds of the JSON API, before any handler.
  app.use("/admin/*", bufferedBody({ limit: BODY_LIMIT_BYTES, timeoutMs: config.REQUEST_BODY_TIMEOUT_MS }));
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
    const again = (status: 400 | 401 | 403 | 429 | 503, error: string) =>
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
      user = await authenticate(sql, { email, password: form.password }, passwordChecks);
      // Only for the account as its password was checked (it may have changed since).
      if (user.role === "ADMIN") {
        const session = await createSession(sql, user.id, config.SESSION_TTL_SECONDS, user.epoch);
        setSessionCookie(c, trustProxy, session.token, config.SESSION_TTL_SECONDS);
        return c.redirect(next, 303);
      }
    } catch (err) {
      if (err instanceof Unauthenticated) return again(401, err.message);
      if (err instanceof Throttled) {
        c.header("Retry-After", String(err.retryAfterSeconds));
        return again(
          429,
          `Too many failed sign-ins for this account. Wait ${err.retryAfterSeconds} s, then try again.`,
        );
      }
      if (err instanceof Unavailable) {
        c.header("Retry-After", String(err.retryAfterSeconds));
        return again(503, err.message);
      }
      throw err;
    }
    return c.html(<ForbiddenPage assets={assets} email={email} role={user.role} />, 403);
  });

  app.post("/admin/logout", signedIn, async (c) => {
    const session = c.get("session");
    await endSession(sql, session.tokenHash);
    // Streams on other instances end at their next keep-alive (they ask the database).
    live.closeSession({ userId: session.userId, sessionKey: session.tokenHash });
    clearSessionCookie(c, trustProxy);
    return c.redirect("/admin/login", 303);
  });

  // ---- the health page and its parts -----------------------------------------

  app.get("/admin/health", ...dashboard, async (c) => {
    const part = partRequested(c);
    const state = part ? partState(c, part) : { params: c.req.query() };
    if (state.push) c.header("HX-Push-Url", state.push);
    const view = await healthView(c, state.params);
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
    const view = await healthView(c, healthPageParams(c));
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
    const csrfToken = c.get("session").csrfToken;
    const panel = <RepairPanel result={result} csrfToken={csrfToken} returnTo={returnTo} />;
    const page = currentPage(c);
    if (page?.path !== "/admin/health") {
      // From the student's page: its pairs show the repaired state too.
      if (!id || page?.path !== `/admin/students/${id.data}`) return c.html(panel);
      const fresh = await studentDetail(sql, id.data);
      return c.html(
        <>
          {panel}
          <section id="pairs" hx-swap-oob="innerHTML">
            <StudentPairs student={fresh} check={null} csrfToken={csrfToken} />
          </section>
        </>,
      );
    }
    // From the health page: the gauge, the cards, the chart and the table show the repaired state.
    const view = await healthView(c, page.params);
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

  // Every admin may set the rollout or roll it back, also from the "not enabled" page (so a
  // 5 % canary or a rollback to 0 % can be undone from the dashboard). Advancing judges the
  // canary's figures, which are health data: only admins in the rollout see them.
  app.post("/admin/rollout", signedIn, async (c) => {
    const form = c.get("form") ?? {};
    const session = c.get("session");
    const inside = inRollout(session.userId, await rollout.percent());
    if (form.action === "advance" && !inside) {
      return c.html(
        <MessagePage
          assets={assets}
          title="Not advanced"
          message="Advancing needs the canary's verdict, which only admins in the rollout see: set a percentage instead, or use deno task canary advance."
        />,
        403,
      );
    }
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
    const change = await setRollout(sql, {
      percent: to,
      reason,
      source: "dashboard",
      actorId: session.userId,
      actor: session.email,
      // An advance moves from the step judged above only (two at once make one change).
      onlyFrom: form.action === "advance" ? fromEvaluatedStep(report) : undefined,
    });
    if (!change) {
      const message = `Not advanced: ${changedMeanwhile(report, await rolloutPercent(sql))}.`;
      return c.html(<MessagePage assets={assets} title="Not advanced" message={message} />, 409);
    }
    rollout.set(to);
    return c.redirect(`/admin/health#${inRollout(session.userId, to) ? "rollout" : "rollout-control"}`, 303);
  });

  // ---- one student ---------------------------------------------------------------

  app.get("/admin/students/:id", ...dashboard, async (c) => {
    const id = studentId.safeParse(c.req.param("id"));
    if (!id.success) return notFoundPage(c, "No such student.");
    const student = await studentDetail(sql, id.data).catch(() => null);
    if (!student) return notFoundPage(c, `There is no user #${id.data}.`);
    // After the no-JavaScript forms (POST, redirect, GET): the check they ran, the repair they made.
    const checked = auditOrCheckId.safeParse(c.req.query("checked"));
    const found = checked.success ? await getCheck(sql, checked.data) : null;
    const check = found?.scope_user_id === id.data ? found : null;
    const repaired = auditOrCheckId.safeParse(c.req.query("repaired"));
    return c.html(
      <StudentPage
        student={student}
        check={check}
        repairedAudit={repaired.success ? repaired.data : undefined}
        now={Date.now()}
        assets={assets}
        viewer={viewer(c)}
      />,
    );
  });

  app.post("/admin/students/:id/check", ...dashboard, async (c) => {
    const id = studentId.safeParse(c.req.param("id"));
    if (!id.success) return notFoundPage(c, "No such student.");
    const student = await studentDetail(sql, id.data).catch(() => null);
    if (!student) return notFoundPage(c, `There is no user #${id.data}.`);
    metrics.manualChecks.inc();
    const check = await runner.run("manual", id.data);
    if (!c.req.header("hx-request")) return c.redirect(`/admin/students/${id.data}?checked=${check.id}`, 303);
    const fresh = await studentDetail(sql, id.data);
    return c.html(<StudentPairs student={fresh} check={check} csrfToken={c.get("session").csrfToken} />);
  });

  // ---- live updates ------------------------------------------------------------------

  const live = liveEvents(events, {
    sessionLive: (key) => sessionLive(sql, key),
    accountChanged: (userId, epoch, fn) => accounts.watch(userId, epoch, fn),
  });
  metrics.countLiveStreams(() => live.open);
  app.get(
    "/admin/health/events",
    ...dashboard,
    (c) => {
      const { userId, tokenHash, epoch } = c.get("session");
      return live.stream(c, { userId, sessionKey: tokenHash, epoch });
    },
  );

  /** The query of the health page htmx posted from (none when it came from elsewhere). */
  function healthPageParams(c: Context): Record<string, string> {
    const page = currentPage(c);
    return page?.path === "/admin/health" ? page.params : {};
  }

  function notFoundPage(c: Context<SessionEnv>, message: string) {
    return c.html(<MessagePage assets={assets} title="Not found" message={message} />, 404);
  }

  return app;
}

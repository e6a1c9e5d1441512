/**
 * Repair from the dashboard: a preview that writes nothing, then the repair
 * and the check run after it, of every student or of one. With htmx the panel
 * is the answer and the page it came from (the health page or the student's)
 * shows the repaired state out of band; without, POST, redirect and GET.
 */
import { Hono } from "hono";
import { NotFound } from "../../lib/errors.ts";
import { repairAndCheck } from "../../lib/integrity/repair.ts";
import { studentDetail } from "../../lib/students.ts";
import { requireUser } from "../../lib/users.ts";
import { LiveContent, OtherParts } from "../../views/health_page.tsx";
import { RepairPage, RepairPanel } from "../../views/repair_panel.tsx";
import { StudentPairs } from "../../views/student_page.tsx";
import { studentIdText } from "../schemas.ts";
import { safeNext, type SessionEnv, viewerOf } from "../middleware/session.ts";
import type { AdminDeps, Dashboard } from "./deps.ts";
import { healthView } from "./health_view.ts";
import { currentPage } from "./parts.ts";

/** The student a repair form names (none: every student); throws NotFound for one that does not exist. */
async function formStudent(sql: AdminDeps["sql"], form: Record<string, string>): Promise<number | undefined> {
  if (!form.student_id) return undefined;
  const id = studentIdText.safeParse(form.student_id);
  if (!id.success) throw new NotFound("No such student");
  await requireUser(sql, id.data);
  return id.data;
}

/** What repairing needs. */
export interface RepairDeps
  extends Pick<AdminDeps, "sql" | "runner" | "config" | "reads" | "assets" | "metrics"> {
  dashboard: Dashboard;
}

/** POST /admin/health/repair/preview and POST /admin/health/repair. */
export function repairRoutes(deps: RepairDeps) {
  const { sql, runner, assets, metrics, dashboard } = deps;
  const app = new Hono<SessionEnv>();

  app.post("/admin/health/repair/preview", ...dashboard, async (c) => {
    const id = await formStudent(sql, c.get("form") ?? {});
    const result = await repairAndCheck(sql, runner, { studentId: id, dryRun: true, actorId: null });
    const returnTo = id ? `/admin/students/${id}` : "/admin/health";
    const panel = <RepairPanel result={result} csrfToken={c.get("session").csrfToken} returnTo={returnTo} />;
    if (c.req.header("hx-request")) return c.html(panel);
    return c.html(<RepairPage assets={assets} viewer={viewerOf(c)} returnTo={returnTo}>{panel}</RepairPage>);
  });

  app.post("/admin/health/repair", ...dashboard, async (c) => {
    const form = c.get("form") ?? {};
    const id = await formStudent(sql, form);
    const result = await repairAndCheck(sql, runner, {
      studentId: id,
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
    const page = currentPage(c.req.raw.headers);
    if (page?.path !== "/admin/health") {
      // From the student's page: its pairs show the repaired state too.
      if (!id || page?.path !== `/admin/students/${id}`) return c.html(panel);
      const fresh = await studentDetail(sql, id);
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
    const view = await healthView(deps, page.params, csrfToken);
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
  return app;
}

/**
 * /admin/students/:id: one student's pairs (progress, license, ledger, what
 * is out of sync) and POST /admin/students/:id/check, a check of that student
 * alone. After the no-JavaScript forms (POST, redirect, GET) the page says
 * what they did: the check they ran, the repair they made.
 */
import { Hono } from "hono";
import { z } from "zod";
import { NotFound } from "../../lib/errors.ts";
import { getCheck } from "../../lib/integrity/store.ts";
import { studentDetail } from "../../lib/students.ts";
import { requireUser } from "../../lib/users.ts";
import { StudentPage, StudentPairs } from "../../views/student_page.tsx";
import { studentIdText } from "../schemas.ts";
import { type SessionEnv, viewerOf } from "../middleware/session.ts";
import type { AdminDeps, Dashboard } from "./deps.ts";

const auditOrCheckId = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** The student id of the path; throws NotFound for one that cannot be an id (lib/ throws it for a missing user). */
function pathStudent(param: string): number {
  const id = studentIdText.safeParse(param);
  if (!id.success) throw new NotFound("No such student");
  return id.data;
}

/** What a student's page needs. */
export interface StudentDeps extends Pick<AdminDeps, "sql" | "runner" | "assets" | "metrics"> {
  dashboard: Dashboard;
}

/** GET /admin/students/:id and POST /admin/students/:id/check. */
export function studentRoutes({ sql, runner, assets, metrics, dashboard }: StudentDeps) {
  const app = new Hono<SessionEnv>();

  app.get("/admin/students/:id", ...dashboard, async (c) => {
    const id = pathStudent(c.req.param("id"));
    const student = await studentDetail(sql, id);
    const checked = auditOrCheckId.safeParse(c.req.query("checked"));
    const found = checked.success ? await getCheck(sql, checked.data) : null;
    const check = found?.scope_user_id === id ? found : null;
    const repaired = auditOrCheckId.safeParse(c.req.query("repaired"));
    return c.html(
      <StudentPage
        student={student}
        check={check}
        repairedAudit={repaired.success ? repaired.data : undefined}
        now={Date.now()}
        assets={assets}
        viewer={viewerOf(c)}
      />,
    );
  });

  app.post("/admin/students/:id/check", ...dashboard, async (c) => {
    const id = pathStudent(c.req.param("id"));
    await requireUser(sql, id);
    metrics.manualChecks.inc();
    const check = await runner.run("manual", id);
    if (!c.req.header("hx-request")) return c.redirect(`/admin/students/${id}?checked=${check.id}`, 303);
    const fresh = await studentDetail(sql, id);
    return c.html(<StudentPairs student={fresh} check={check} csrfToken={c.get("session").csrfToken} />);
  });
  return app;
}

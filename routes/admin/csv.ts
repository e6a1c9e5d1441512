/** GET /admin/health/violations.csv: the latest check's violations under the page's filters, streamed. */
import { Hono } from "hono";
import { violationsCsv } from "../../lib/integrity/violations.ts";
import type { SessionEnv } from "../middleware/session.ts";
import type { AdminDeps, Dashboard } from "./deps.ts";
import { pageQuery } from "./parts.ts";

/** The CSV export, as an attachment named after its filters. */
export function csvRoutes({ reads, dashboard }: Pick<AdminDeps, "reads"> & { dashboard: Dashboard }) {
  const app = new Hono<SessionEnv>();
  app.get("/admin/health/violations.csv", ...dashboard, (c) => {
    const q = pageQuery.parse(c.req.query());
    const name = ["violations", q.kind, q.specialization].filter(Boolean).join("-").toLowerCase();
    return c.body(violationsCsv(reads(), { kind: q.kind, specialization: q.specialization }), 200, {
      "Content-Type": "text/csv; charset=utf-8",
      "Content-Disposition": `attachment; filename="${name}.csv"`,
    });
  });
  return app;
}

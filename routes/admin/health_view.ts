/** The data of /admin/health for one URL state: what the page and each of its parts render. */
import { healthMetrics } from "../../lib/integrity/health_metrics.ts";
import { healthReport } from "../../lib/integrity/report.ts";
import { listViolations } from "../../lib/integrity/violations.ts";
import type { HealthView } from "../../views/health_page.tsx";
import type { AdminDeps } from "./deps.ts";
import { filtersOf, pageQuery } from "./parts.ts";

/** Where the health page's data comes from. */
export type HealthSources = Pick<AdminDeps, "sql" | "config" | "runner" | "reads">;

/** The page's data for the state in `params` (the URL's query), with the viewer's CSRF token for its forms. */
export async function healthView(
  { sql, config, runner, reads }: HealthSources,
  params: Record<string, string>,
  csrfToken: string,
): Promise<HealthView> {
  const q = pageQuery.parse(params);
  const page = { kind: q.kind, specialization: q.specialization, limit: 25 };
  const [report, metrics, violations] = await Promise.all([
    healthReport(sql, config, runner.fullCheckRunning),
    healthMetrics(reads(), q.window),
    // A cursor the URL kept that does not decode (edited by hand) shows the first page instead.
    listViolations(reads(), { ...page, cursor: q.cursor }).catch(() => listViolations(reads(), page)),
  ]);
  return {
    now: Date.now(),
    report,
    metrics,
    violations,
    filters: filtersOf(q),
    refreshSeconds: config.DASHBOARD_REFRESH_SECONDS,
    csrfToken,
    notice: q.repaired ? `Repair #${q.repaired} is done; the check run after it is shown below.` : undefined,
  };
}

/**
 * A browser on the dashboard gets an error as a page, not as problem+json: a
 * refusal, a missing student or route, the rate limit, the database guard or
 * an unexpected error under /admin answer a short HTML page made from the same
 * problem (routes/problem.ts: status, title, detail and headers such as
 * Retry-After or Allow). htmx requests and event streams keep the problem,
 * which the page's script handles.
 */
import type { Context } from "hono";
import type { Assets } from "../../views/layout.tsx";
import { MessagePage } from "../../views/login_page.tsx";
import { type Problem, type ProblemPage, titleOf } from "../problem.ts";

/** True for a page request under /admin (a browser's navigation or form, not htmx). */
export function wantsPage(c: Context): boolean {
  const path = c.req.path;
  return (path === "/admin" || path.startsWith("/admin/")) &&
    (c.req.header("Accept") ?? "").includes("text/html") && !c.req.header("HX-Request");
}

/** The dashboard's error pages, for the requests that want a page. */
export function dashboardErrorPage(assets: Assets): ProblemPage {
  return (c: Context, problem: Problem) => {
    if (!wantsPage(c)) return null;
    const requestId = c.get("requestId") as string | undefined;
    const message = `${problem.detail}${requestId ? ` (request ${requestId})` : ""}`;
    return c.html(
      <MessagePage assets={assets} title={titleOf(problem.status)} message={message} />,
      problem.status,
      problem.headers,
    );
  };
}

/**
 * A browser on the dashboard gets an error as a page, not as problem+json: the
 * rate limit, the database guard, a missing route or an unexpected error under
 * /admin/ answer a short HTML page with the same status and headers
 * (Retry-After, Allow, RateLimit: Hono carries them over to the new response).
 * htmx requests and event streams keep the problem, which the page's script
 * handles.
 */
import { createMiddleware } from "hono/factory";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Assets } from "../../views/layout.tsx";
import { MessagePage } from "../../views/login_page.tsx";

/** Turns problem+json answers to page requests under /admin/ into pages. */
export function pageErrors(assets: Assets) {
  return createMiddleware(async (c, next) => {
    await next();
    const wantsPage = (c.req.header("Accept") ?? "").includes("text/html") && !c.req.header("HX-Request");
    if (!wantsPage || !c.res.headers.get("Content-Type")?.startsWith("application/problem+json")) return;
    const problem = await c.res.clone().json() as { title?: string; detail?: string; request_id?: string };
    const message = `${problem.detail ?? ""}${problem.request_id ? ` (request ${problem.request_id})` : ""}`;
    const status = c.res.status as ContentfulStatusCode;
    c.res = await c.html(
      <MessagePage assets={assets} title={problem.title ?? "Error"} message={message} />,
      status,
    );
  });
}

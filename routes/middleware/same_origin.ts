/**
 * The dashboard's Origin check: Hono's `csrf` refuses an unsafe method (POST,
 * DELETE, ...) sent as a form, or with no Content-Type, unless its `Origin` (or
 * `Sec-Fetch-Site: same-origin`) says it comes from this site. Its refusal is a
 * bare "Forbidden"; here it becomes a problem whose detail says what was
 * missing, which routes/admin/error_page.tsx shows to a browser as a page.
 */
import type { Context, MiddlewareHandler } from "hono";
import { csrf } from "hono/csrf";
import { HTTPException } from "hono/http-exception";
import { HttpProblem } from "../problem.ts";

/** Why an unsafe request was refused: no Origin at all, or another site's. */
export function originRefusal(method: string, origin: string | undefined, own: string): string {
  return origin === undefined
    ? `A ${method} to the dashboard must carry an Origin header from this site (${own}); this request has none`
    : `A ${method} to the dashboard must come from this site (Origin ${own}); this request came from another origin`;
}

/** Hono's `csrf` with `ownOrigin(c)` as the only accepted origin, refusing with a problem that says why. */
export function sameOrigin(ownOrigin: (c: Context) => string): MiddlewareHandler {
  const check = csrf({ origin: (origin, c) => origin === ownOrigin(c) });
  return async (c, next) => {
    let passed = false;
    try {
      await check(c, async () => {
        passed = true;
        await next();
      });
    } catch (err) {
      if (passed || !(err instanceof HTTPException) || err.status !== 403) throw err;
      throw new HttpProblem(403, originRefusal(c.req.method, c.req.header("origin"), ownOrigin(c)));
    }
  };
}

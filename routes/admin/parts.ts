/**
 * Which part of /admin/health htmx asks for, and the state it shows. The
 * page's state lives in its URL (`window`, `kind`, `specialization`,
 * `cursor`); anything else in it is ignored. Pure: headers and query in, plain
 * values out (tests/admin_parts_test.ts needs no database).
 */
import { z } from "zod";
import { SPECIALIZATION_IDS, VIOLATION_KINDS } from "../../lib/model.ts";
import { query } from "../../views/format.ts";

/** The health page's URL parameters, each falling back to its default when it is not one we know. */
export const pageQuery = z.object({
  window: z.enum(["1h", "24h", "7d"]).catch("24h"),
  kind: z.enum(VIOLATION_KINDS).optional().catch(undefined),
  specialization: z.enum(SPECIALIZATION_IDS).optional().catch(undefined),
  cursor: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/).optional().catch(undefined),
  repaired: z.coerce.number().int().positive().optional().catch(undefined),
  seen: z.coerce.number().int().optional().catch(undefined),
});

/** The health page's URL state. */
export type PageQuery = z.infer<typeof pageQuery>;

/** The URL parameters of /admin/health that each part's own links and forms set. */
const PART_OWNS: Record<string, readonly string[]> = {
  "history-part": ["window"],
  "violations-part": ["kind", "specialization", "cursor"],
};

/** The table's filters and the chart's window of `q`, the default window left out. */
export function filtersOf(q: PageQuery) {
  return {
    window: q.window === "24h" ? undefined : q.window,
    kind: q.kind,
    specialization: q.specialization,
    cursor: q.cursor,
  };
}

/** The part htmx asks for alone (its HX-Target), or null for the whole page (also when restoring history). */
export function partRequested(headers: Headers): string | null {
  if (!headers.get("hx-request") || headers.get("hx-history-restore-request")) return null;
  return headers.get("hx-target");
}

/** The path and query of the page htmx asked from (HX-Current-URL), when it is a URL. */
export function currentPage(headers: Headers): { path: string; params: Record<string, string> } | null {
  try {
    const url = new URL(headers.get("hx-current-url") ?? "");
    return { path: url.pathname, params: Object.fromEntries(url.searchParams) };
  } catch {
    return null;
  }
}

/** The query of the health page htmx posted from (none when it came from elsewhere). */
export function healthPageParams(headers: Headers): Record<string, string> {
  const page = currentPage(headers);
  return page?.path === "/admin/health" ? page.params : {};
}

/**
 * The state a part of /admin/health shows, from the request's headers and
 * query (`asked`). The page's URL is the truth (the containers' hidden inputs
 * may be older than it): a part refreshing itself (the timer or a live event:
 * HX-Trigger is its own id) shows the URL's state and says which check it
 * showed (`seen`); a link or form inside a part changes what that part owns
 * and keeps the rest of the URL, and the whole state is pushed (HX-Push-Url),
 * so reload and back show what is on screen.
 */
export function partState(
  headers: Headers,
  asked: Record<string, string>,
  target: string,
): { params: Record<string, string>; push?: string } {
  const page = currentPage(headers);
  // Without the page's URL (not sent, or not this page) the request is all there is.
  if (page?.path !== "/admin/health") return { params: asked };
  const owns = PART_OWNS[target];
  if (headers.get("hx-trigger") === target || !owns) {
    return { params: { ...page.params, ...(asked.seen !== undefined ? { seen: asked.seen } : {}) } };
  }
  const params = { ...page.params };
  for (const key of owns) {
    delete params[key];
    if (key in asked) params[key] = asked[key];
  }
  return { params, push: `/admin/health${query(filtersOf(pageQuery.parse(params)))}` };
}

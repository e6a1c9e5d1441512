/** GET /health/violations: one check's violations, filtered, keyset-paginated by id. */
import { csvRow } from "../csv.ts";
import type { Queryable } from "../db.ts";
import { Invalid } from "../errors.ts";
import { z } from "zod";
import { SPECIALIZATION_IDS, VIOLATION_KINDS, type ViolationKind } from "../model.ts";

/** One violation as the API returns it. */
export const violationItemSchema = z.strictObject({
  id: z.int(),
  check_id: z.int(),
  kind: z.enum(VIOLATION_KINDS),
  student_id: z.int(),
  specialization_id: z.enum(SPECIALIZATION_IDS),
  /** The values that disagree (levels, XP), by kind. */
  details: z.record(z.string(), z.unknown()),
});

/** The body of GET /api/v1/health/violations: the schema is the type. */
export const violationPageSchema = z.strictObject({
  items: z.array(violationItemSchema),
  next_cursor: z.string().nullable(),
  total: z.int(),
  check_id: z.int().nullable(),
});

/** One violation. */
export type ViolationItem = z.infer<typeof violationItemSchema>;
/** One page. */
export type ViolationPage = z.infer<typeof violationPageSchema>;

/** Filters and page position. */
export interface ViolationQuery {
  kind?: ViolationKind;
  specialization?: string;
  limit: number;
  cursor?: string;
}

// The cursor pins the check it started on, so a walk stays on one check even
// when a newer one finishes meanwhile.
function encodeCursor(checkId: number, afterId: number): string {
  return btoa(`v1:${checkId}:${afterId}`).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string): { checkId: number; afterId: number } {
  let text = "";
  try {
    text = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch { /* invalid below */ }
  const m = /^v1:(\d{1,15}):(\d{1,15})$/.exec(text);
  if (!m) {
    throw new Invalid("The cursor is not one this API returned", [{
      field: "cursor",
      message: "Invalid cursor",
    }]);
  }
  return { checkId: Number(m[1]), afterId: Number(m[2]) };
}

/** A page of the latest full check's violations (or of the check a cursor pins). */
export async function listViolations(q: Queryable, query: ViolationQuery): Promise<ViolationPage> {
  const position = query.cursor ? decodeCursor(query.cursor) : null;
  let checkId = position?.checkId ?? null;
  if (checkId === null) {
    const [latest] = await q<{ id: number }[]>`SELECT id FROM latest_full_check`;
    if (!latest) return { items: [], next_cursor: null, total: 0, check_id: null };
    checkId = latest.id;
  }
  const filters = q`
    check_id = ${checkId}
    ${query.kind ? q`AND kind = ${query.kind}` : q``}
    ${query.specialization ? q`AND specialization_id = ${query.specialization}` : q``}`;
  const rows = await q<ViolationItem[]>`
    SELECT id, check_id, kind, student_id, specialization_id, details FROM integrity_violations
    WHERE ${filters} ${position ? q`AND id > ${position.afterId}` : q``}
    ORDER BY id LIMIT ${query.limit + 1}`;
  const [{ total }] = await q<{ total: number }[]>`
    SELECT count(*) AS total FROM integrity_violations WHERE ${filters}`;
  const more = rows.length > query.limit;
  const items = more ? rows.slice(0, query.limit) : [...rows];
  return {
    items,
    next_cursor: more ? encodeCursor(checkId, items[items.length - 1].id) : null,
    total,
    check_id: checkId,
  };
}

/** CSV columns of a violation. */
const CSV_HEADER = "check_id,kind,student_id,specialization_id,details\n";

/**
 * Every violation of the latest full check matching the filters, as CSV,
 * streamed from a cursor: memory stays flat however many there are.
 */
export function violationsCsv(
  q: Queryable,
  filters: { kind?: ViolationKind; specialization?: string },
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let rows: AsyncIterator<ViolationItem[]> | undefined;
  return new ReadableStream({
    start(controller) {
      controller.enqueue(encoder.encode(CSV_HEADER));
      const cursor = q<ViolationItem[]>`
        SELECT v.check_id, v.kind, v.student_id, v.specialization_id, v.details
        FROM integrity_violations v JOIN latest_full_check c ON c.id = v.check_id
        WHERE true
          ${filters.kind ? q`AND v.kind = ${filters.kind}` : q``}
          ${filters.specialization ? q`AND v.specialization_id = ${filters.specialization}` : q``}
        ORDER BY v.id`.cursor(1000);
      rows = cursor[Symbol.asyncIterator]();
    },
    async pull(controller) {
      const next = await rows!.next();
      if (next.done) return controller.close();
      const text = next.value.map((v) =>
        csvRow([v.check_id, v.kind, v.student_id, v.specialization_id, v.details])
      ).join("\n") + "\n";
      controller.enqueue(encoder.encode(text));
    },
    async cancel() {
      await rows?.return?.();
    },
  });
}

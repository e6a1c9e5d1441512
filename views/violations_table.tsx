/**
 * The violations of the latest full check: filter by kind and specialization,
 * keyset pages, the URL kept in sync (reload and back work), CSV of the
 * filtered list, and "repair" per row. Plain links and forms without JavaScript.
 */
import type { ViolationPage } from "../lib/integrity/violations.ts";
import { SPECIALIZATION_IDS, VIOLATION_KINDS } from "../lib/model.ts";
import { count, kindLabel, query } from "./format.ts";

/** The filters and page position of the table. */
export interface ViolationFilters {
  window?: string;
  kind?: string;
  specialization?: string;
  cursor?: string;
}

function details(d: Record<string, unknown>): string {
  const parts: string[] = [];
  if (d.progress_level !== undefined) parts.push(`progress L${d.progress_level}`);
  if (d.license_level !== undefined) parts.push(`license L${d.license_level}`);
  if (d.max_achieved_level !== undefined) parts.push(`max L${d.max_achieved_level}`);
  if (d.expected_level !== undefined) parts.push(`expected L${d.expected_level}`);
  if (d.total_xp !== undefined) parts.push(`${count(Number(d.total_xp))} XP`);
  if (d.ledger_xp !== undefined) parts.push(`ledger ${count(Number(d.ledger_xp))} XP`);
  return parts.join(", ");
}

/** The table; `detectedAt` is the check's finish time (when the violations were found). */
export function ViolationsTable(
  props: { page: ViolationPage; filters: ViolationFilters; detectedAt: string | null; csrfToken: string },
) {
  const { page, filters } = props;
  const base = { window: filters.window, kind: filters.kind, specialization: filters.specialization };
  const firstPage = `/admin/health${query(base)}`;
  const next = page.next_cursor ? `/admin/health${query({ ...base, cursor: page.next_cursor })}` : null;
  return (
    <section id="violations" class="card wide" aria-labelledby="violations-title">
      <div class="card-head">
        <h2 id="violations-title">Violations</h2>
        <a
          class="button"
          href={`/admin/health/violations.csv${
            query({ kind: filters.kind, specialization: filters.specialization })
          }`}
          download
        >
          Download CSV
        </a>
      </div>
      <form
        method="get"
        action="/admin/health"
        class="filters"
        hx-get="/admin/health"
        hx-target="#violations-part"
        hx-push-url="true"
        hx-trigger="change, submit"
      >
        {filters.window && <input type="hidden" name="window" value={filters.window} />}
        <label>
          Kind
          <select name="kind">
            <option value="">all</option>
            {VIOLATION_KINDS.map((k) => (
              <option value={k} selected={filters.kind === k}>{kindLabel(k)}</option>
            ))}
          </select>
        </label>
        <label>
          Specialization
          <select name="specialization">
            <option value="">all</option>
            {SPECIALIZATION_IDS.map((s) => (
              <option value={s} selected={filters.specialization === s}>{s}</option>
            ))}
          </select>
        </label>
        <noscript>
          <button type="submit">Filter</button>
        </noscript>
      </form>
      <p class="muted" aria-live="polite">
        {count(page.total)} {page.total === 1 ? "violation" : "violations"}
        {filters.kind || filters.specialization ? " match the filter" : " in the latest check"}
        {filters.cursor ? " (a later page)" : ""}
      </p>
      {page.items.length === 0
        ? (
          <p class="empty">
            {page.check_id === null ? "No full check has finished yet." : "Nothing out of sync here."}
          </p>
        )
        : (
          <div class="table-scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">Student</th>
                  <th scope="col">Specialization</th>
                  <th scope="col">Values</th>
                  <th scope="col">Detected</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.items.map((v) => (
                  <tr>
                    <td>{kindLabel(v.kind)}</td>
                    <td>
                      <a href={`/admin/students/${v.student_id}`}>#{v.student_id}</a>
                    </td>
                    <td>{v.specialization_id}</td>
                    <td>{details(v.details)}</td>
                    <td>
                      {props.detectedAt
                        ? (
                          <time datetime={props.detectedAt}>
                            {props.detectedAt.slice(0, 16).replace("T", " ")}
                          </time>
                        )
                        : "—"}
                    </td>
                    <td>
                      <form
                        method="post"
                        action="/admin/health/repair/preview"
                        hx-post="/admin/health/repair/preview"
                        hx-target="#repair-panel"
                      >
                        <input type="hidden" name="_csrf" value={props.csrfToken} />
                        <input type="hidden" name="student_id" value={String(v.student_id)} />
                        <button type="submit" class="small">Repair…</button>
                      </form>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      <nav class="pager" aria-label="Pages">
        {filters.cursor && (
          <a href={firstPage} hx-get={firstPage} hx-target="#violations-part" hx-push-url="true">
            First page
          </a>
        )}
        {next && (
          <a href={next} hx-get={next} hx-target="#violations-part" hx-push-url="true" rel="next">
            Next page
          </a>
        )}
      </nav>
    </section>
  );
}

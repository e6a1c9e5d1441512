/**
 * Repair in two steps: a dry-run preview (before → after for each pair, what
 * is left alone and why), then a confirm form; then the result, its audit
 * entry and the check that ran after it.
 */
import type { Child } from "hono/jsx";
import type { RepairResult } from "../lib/integrity/repair.ts";
import { count, percent } from "./format.ts";
import { type Assets, Layout } from "./layout.tsx";

type Change = RepairResult["changes"][number];

function levels(change: Change) {
  const parts: string[] = [];
  if (change.progress_level) {
    parts.push(`progress L${change.progress_level.before} → L${change.progress_level.after}`);
  }
  if (change.license_created) parts.push(`license created at L${change.license_level?.after}`);
  else if (change.license_level) {
    parts.push(`license L${change.license_level.before} → L${change.license_level.after}`);
  }
  if (change.max_achieved_level) {
    parts.push(`max L${change.max_achieved_level.before ?? "—"} → L${change.max_achieved_level.after}`);
  }
  return parts.join("; ");
}

/** The panel the previews and results go into (an htmx target; its content is swapped). */
export function RepairSlot(props: { children?: Child }) {
  return <div id="repair-panel" aria-live="polite">{props.children}</div>;
}

/** The outcome of a preview or a repair; `returnTo` is where the no-JS flow goes back to. */
export function RepairPanel(props: { result: RepairResult; csrfToken: string; returnTo: string }) {
  const { result } = props;
  const scope = result.student_id === null ? "every student" : `student #${result.student_id}`;
  const n = result.dry_run ? result.would_repair : result.repaired_pairs;
  return (
    <section class="card wide repair" aria-labelledby="repair-title">
      <h2 id="repair-title">{result.dry_run ? `Repair preview: ${scope}` : `Repaired: ${scope}`}</h2>
      <p>
        {result.dry_run
          ? `${count(n)} ${
            n === 1 ? "pair" : "pairs"
          } would be re-synced from progress (the source of truth). Nothing has changed yet.`
          : `${count(n)} ${n === 1 ? "pair was" : "pairs were"} re-synced. Audit entry #${result.audit_id}.`}
      </p>
      {result.changes.length > 0 && (
        <div class="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Student</th>
                <th scope="col">Specialization</th>
                <th scope="col">{result.dry_run ? "Would change" : "Changed"}</th>
              </tr>
            </thead>
            <tbody>
              {result.changes.map((c) => (
                <tr>
                  <td>
                    <a href={`/admin/students/${c.student_id}`}>#{c.student_id}</a>
                  </td>
                  <td>{c.specialization_id}</td>
                  <td>{levels(c)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {result.changes_truncated && (
            <p class="muted">The first {count(result.changes.length)} are listed.</p>
          )}
        </div>
      )}
      {result.not_repairable_total > 0 && (
        <>
          <h3>Left alone ({count(result.not_repairable_total)})</h3>
          <ul>
            {result.not_repairable.map((r) => (
              <li>
                <a href={`/admin/students/${r.student_id}`}>#{r.student_id}</a> {r.specialization_id}:{" "}
                {r.reason}
              </li>
            ))}
          </ul>
        </>
      )}
      {result.dry_run
        ? (
          n > 0
            ? (
              <form
                method="post"
                action="/admin/health/repair"
                hx-post="/admin/health/repair"
                hx-target="#repair-panel"
                hx-disabled-elt="find button"
              >
                <input type="hidden" name="_csrf" value={props.csrfToken} />
                <input type="hidden" name="return_to" value={props.returnTo} />
                {result.student_id !== null && (
                  <input type="hidden" name="student_id" value={String(result.student_id)} />
                )}
                <button type="submit" class="danger">Repair {count(n)} {n === 1 ? "pair" : "pairs"}</button>
                <a class="button" href={props.returnTo}>Cancel</a>
              </form>
            )
            : <p class="muted">Nothing to repair.</p>
        )
        : (
          result.check && (
            <p>
              Check #{result.check.id} ran right after: {result.check.status ?? result.check.outcome},{" "}
              {percent(result.check.consistency_rate)} consistent, {count(result.check.violation_count)}{" "}
              violations left.
            </p>
          )
        )}
    </section>
  );
}

/** The preview as a page of its own (without JavaScript the form posts here). */
export function RepairPage(
  props: { assets: Assets; viewer: { email: string; csrfToken: string }; returnTo: string; children?: Child },
) {
  return (
    <Layout title="Repair" assets={props.assets} viewer={props.viewer}>
      <p>
        <a href={props.returnTo}>← Back</a>
      </p>
      <RepairSlot>{props.children}</RepairSlot>
    </Layout>
  );
}

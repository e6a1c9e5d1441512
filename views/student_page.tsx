/**
 * /admin/students/:id: each specialization's progress and license side by
 * side and whether they agree, the XP ledger as a timeline, and check and
 * repair for this one student. Where an admin lands from a violation.
 */
import type { CheckRecord } from "../lib/integrity/store.ts";
import type { StudentDetail } from "../lib/students.ts";
import { count, kindLabel, relative, utc } from "./format.ts";
import { type Assets, Layout } from "./layout.tsx";
import { RepairSlot } from "./repair_panel.tsx";

/** The pairs and the last one-student check: the content "Check this student" refreshes. */
export function StudentPairs(
  props: { student: StudentDetail; check: CheckRecord | null; csrfToken: string },
) {
  const { student, check } = props;
  return (
    <>
      <div class="card-head">
        <h2 id="pairs-title">Progress and license</h2>
        <form
          method="post"
          action={`/admin/students/${student.id}/check`}
          hx-post={`/admin/students/${student.id}/check`}
          hx-target="#pairs"
          hx-disabled-elt="find button"
        >
          <input type="hidden" name="_csrf" value={props.csrfToken} />
          <button type="submit">
            <span class="when-idle">Check this student</span>
            <span class="when-busy" aria-hidden="true">Checking…</span>
          </button>
        </form>
        <form
          method="post"
          action="/admin/health/repair/preview"
          hx-post="/admin/health/repair/preview"
          hx-target="#repair-panel"
        >
          <input type="hidden" name="_csrf" value={props.csrfToken} />
          <input type="hidden" name="student_id" value={String(student.id)} />
          <button type="submit">Repair…</button>
        </form>
      </div>
      {check && (
        <p class="notice" role="status">
          Check #{check.id}: {check.outcome === "success"
            ? `${count(check.violation_count)} ${
              check.violation_count === 1 ? "violation" : "violations"
            } in ${count(check.pairs_checked)} pairs`
            : `${check.outcome}: ${check.error ?? ""}`}
        </p>
      )}
      {student.pairs.length === 0
        ? <p class="empty">No progress or license yet: the first XP enrols a student.</p>
        : (
          <div class="pairs">
            {student.pairs.map((pair) => (
              <article
                class={`pair ${pair.problems.length ? "pair-bad" : "pair-ok"}`}
                aria-label={pair.specialization_id}
              >
                <h3>
                  {pair.specialization_id}{" "}
                  <span class={`badge ${pair.problems.length ? "badge-critical" : "badge-healthy"}`}>
                    {pair.problems.length ? "out of sync" : "in sync"}
                  </span>
                </h3>
                <dl class="side-by-side">
                  <div>
                    <dt>Progress</dt>
                    <dd>
                      {pair.progress
                        ? <>Level {pair.progress.current_level} · {count(pair.progress.total_xp)} XP</>
                        : "missing"}
                    </dd>
                    <dd class="muted">thresholds give level {pair.expected_level ?? "—"}</dd>
                  </div>
                  <div>
                    <dt>License</dt>
                    <dd>
                      {pair.license
                        ? <>Level {pair.license.current_level} · highest {pair.license.max_achieved_level}</>
                        : "missing"}
                    </dd>
                    <dd class="muted">ledger adds up to {count(pair.ledger_xp)} XP</dd>
                  </div>
                </dl>
                {pair.problems.length > 0 && (
                  <ul class="problems">
                    {pair.problems.map((k) => <li key={k}>{kindLabel(k)}</li>)}
                  </ul>
                )}
              </article>
            ))}
          </div>
        )}
    </>
  );
}

/** The whole page. */
export function StudentPage(
  props: {
    student: StudentDetail;
    check: CheckRecord | null;
    /** The audit entry of the repair the no-JavaScript form just made (its redirect's `?repaired=`). */
    repairedAudit?: number;
    now: number;
    assets: Assets;
    viewer: { email: string; csrfToken: string };
  },
) {
  const { student, now } = props;
  return (
    <Layout title={`Student #${student.id}`} assets={props.assets} viewer={props.viewer}>
      <p>
        <a href="/admin/health">← Health</a>
      </p>
      <div class="page-head">
        <h1>
          Student #{student.id}: {student.full_name || student.email}
        </h1>
        <p class="muted">
          {student.email} · {student.role.toLowerCase()}
          {student.is_active ? "" : " · inactive"}
        </p>
      </div>
      {props.repairedAudit && (
        <p class="notice" role="status">
          Repair done (audit entry #{props.repairedAudit}): the pairs below show the repaired state.
        </p>
      )}
      <section id="pairs" class="card wide" aria-labelledby="pairs-title">
        <StudentPairs student={student} check={props.check} csrfToken={props.viewer.csrfToken} />
      </section>
      <RepairSlot />
      <section class="card wide" aria-labelledby="ledger-title">
        <h2 id="ledger-title">XP ledger</h2>
        <p class="muted">
          {count(student.ledger_total)} {student.ledger_total === 1 ? "entry" : "entries"}, newest first
          {student.ledger_total > student.ledger.length
            ? ` (the latest ${count(student.ledger.length)})`
            : ""}
        </p>
        {student.ledger.length === 0 ? <p class="empty">No XP yet.</p> : (
          <ol class="timeline">
            {student.ledger.map((e) => (
              <li>
                <time datetime={e.at} title={utc(e.at)}>{relative(e.at, now)}</time>
                <span class="timeline-what">
                  +{count(e.xp_change)} XP {e.specialization_id}: {count(e.xp_before)} →{" "}
                  {count(e.xp_after)}, level {e.level_before} → {e.level_after}
                  {e.level_after > e.level_before ? " (level up)" : ""}
                </span>
                <span class="muted">
                  by {e.actor ?? "—"} ({e.source}){e.request_id ? ` · request ${e.request_id}` : ""}
                </span>
              </li>
            ))}
          </ol>
        )}
      </section>
    </Layout>
  );
}

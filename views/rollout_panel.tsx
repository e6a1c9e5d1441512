/**
 * The canary rollout on the dashboard: the percentage, the current step and
 * the canary's verdict, and the forms that set, advance or roll it back; and
 * the page admins outside the rollout get instead of the dashboard (no health
 * data on it, but the set and roll-back forms, so a canary can be undone from there).
 */
import type { CanaryReport } from "../lib/canary/verdict.ts";
import type { RolloutState } from "../lib/canary/rollout.ts";
import { duration, percent, relative, utc } from "./format.ts";
import { type Assets, Layout } from "./layout.tsx";

const VERDICT_BADGE = {
  proceed: "badge-healthy",
  investigate: "badge-degraded",
  rollback: "badge-critical",
  no_data: "badge-unknown",
} as const;

/** The rollout section of the health page (admins in the rollout only). */
export function RolloutPanel(
  props: { report: CanaryReport; state: RolloutState; csrfToken: string; now: number },
) {
  const { report, state } = props;
  const change = state.last_change;
  return (
    <section class="card" id="rollout" aria-labelledby="rollout-title">
      <div class="card-head">
        <h2 id="rollout-title">Dashboard rollout</h2>
        <span class={`badge ${VERDICT_BADGE[report.verdict]}`}>canary: {report.verdict}</span>
      </div>
      <p>
        <strong>{state.percent} %</strong> of admins see this dashboard. {change
          ? (
            <span class="muted">
              Set {relative(change.at, props.now)} ({utc(change.at)}) by {change.actor}, from {change.from}
              {" "}
              %{change.reason ? `: ${change.reason}` : ""}.
            </span>
          )
          : <span class="muted">Never changed since installation.</span>}
      </p>
      {change?.source === "auto-rollback" && (
        <p class="alert" role="status">
          The canary was rolled back automatically {relative(change.at, props.now)}.
        </p>
      )}
      <div class="table-scroll">
        <table class="canary">
          <caption class="muted">Canary metrics over the last {report.window} (all instances)</caption>
          <thead>
            <tr>
              <th scope="col">metric</th>
              <th scope="col">value</th>
              <th scope="col">baseline</th>
              <th scope="col">threshold</th>
              <th scope="col">verdict</th>
            </tr>
          </thead>
          <tbody>
            {report.metrics.map((m) => (
              <tr>
                <th scope="row" title={m.description}>{m.name.replaceAll("_", " ")}</th>
                <td>
                  {show(m.value, m.unit)} <span class="muted">({m.samples})</span>
                </td>
                <td>{show(m.baseline, m.unit)}</td>
                <td>{show(m.threshold, m.unit)} → {m.past_threshold}</td>
                <td>
                  <span class={`badge ${VERDICT_BADGE[m.verdict]}`}>{m.verdict.replace("_", " ")}</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <RolloutForms percent={state.percent} nextStep={report.rollout.next_step} csrfToken={props.csrfToken} />
      <p class="muted">
        Steps: 5 → 25 → 50 → 100 %, each soaking {report.rollout.soak_hours} h with a <em>proceed</em> verdict
        {report.rollout.step_started_at && !report.rollout.soaked
          ? ` (this step started ${relative(report.rollout.step_started_at, props.now)})`
          : ""}. Admins outside the rollout see a page without health data.
      </p>
    </section>
  );
}

/**
 * The forms that change the rollout (each with the session's CSRF token):
 * advance (when `nextStep` is given), set, and roll back.
 */
function RolloutForms(props: { percent: number; nextStep: number | null; csrfToken: string }) {
  return (
    <div class="rollout-actions">
      {props.nextStep !== null && (
        <form method="post" action="/admin/rollout">
          <input type="hidden" name="_csrf" value={props.csrfToken} />
          <input type="hidden" name="action" value="advance" />
          <button type="submit">Advance to {props.nextStep} %</button>
        </form>
      )}
      <form method="post" action="/admin/rollout" class="inline">
        <input type="hidden" name="_csrf" value={props.csrfToken} />
        <input type="hidden" name="action" value="set" />
        <label for="rollout-percent">Set to</label>
        <input
          id="rollout-percent"
          name="percent"
          type="number"
          min="0"
          max="100"
          step="1"
          required
          value={String(props.percent)}
        />
        <label for="rollout-reason">because</label>
        <input id="rollout-reason" name="reason" type="text" maxlength={500} placeholder="reason" />
        <button type="submit">Set</button>
      </form>
      {props.percent > 0 && (
        <form method="post" action="/admin/rollout">
          <input type="hidden" name="_csrf" value={props.csrfToken} />
          <input type="hidden" name="action" value="rollback" />
          <button type="submit" class="danger">Roll back to 0 %</button>
        </form>
      )}
    </div>
  );
}

function show(value: number | null, unit: "ratio" | "ms"): string {
  return unit === "ms" ? duration(value) : percent(value);
}

/** What an admin outside the rollout gets instead of the dashboard: no health data. */
export function NotEnabledPage(
  props: {
    assets: Assets;
    viewer: { email: string; csrfToken: string };
    percent: number;
    rolledBackAt: string | null;
  },
) {
  return (
    <Layout title="Health dashboard" assets={props.assets} viewer={props.viewer}>
      <section class="card narrow" id="not-enabled">
        <h1>Not enabled for you yet</h1>
        <p>
          The new health dashboard is being rolled out to admins step by step, and your account is not in the
          rollout yet ({props.percent} % of admins have it).
        </p>
        {props.rolledBackAt && (
          <p class="notice" role="status">
            It was rolled back automatically at {utc(props.rolledBackAt)}, while its figures are looked at.
          </p>
        )}
        <p class="muted">
          The integrity checks keep running either way. The health API and <code>deno task scan</code>{" "}
          work as before.
        </p>
      </section>
      <section class="card narrow" id="rollout-control" aria-labelledby="rollout-control-title">
        <h2 id="rollout-control-title">Dashboard rollout</h2>
        <p>
          Set the share of admins who see the new dashboard, or roll it back. Advancing by the canary's
          verdict is for admins in the rollout (or <code>deno task canary advance</code>).
        </p>
        <RolloutForms percent={props.percent} nextStep={null} csrfToken={props.viewer.csrfToken} />
      </section>
    </Layout>
  );
}

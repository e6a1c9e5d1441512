/**
 * /admin/health: the gauge and cards (the live panel), the history chart, the
 * violations table and the repair panel. Each part is a partial the route can
 * send alone for an htmx swap, so the page and its refreshes are the same
 * components and cannot drift.
 */
import type { HealthMetrics } from "../lib/integrity/health_metrics.ts";
import type { HealthReport } from "../lib/integrity/report.ts";
import type { ViolationPage } from "../lib/integrity/violations.ts";
import { Cards } from "./cards.tsx";
import { CheckButton } from "./check_button.tsx";
import { Gauge } from "./gauge.tsx";
import { HistoryChart } from "./history_chart.tsx";
import { type Assets, Layout } from "./layout.tsx";
import { RepairSlot } from "./repair_panel.tsx";
import { type ViolationFilters, ViolationsTable } from "./violations_table.tsx";

/** Everything the page shows; plain data. */
export interface HealthView {
  now: number;
  report: HealthReport;
  metrics: HealthMetrics;
  violations: ViolationPage;
  filters: ViolationFilters;
  refreshSeconds: number;
  csrfToken: string;
  notice?: string;
}

/**
 * What makes a part refresh: the timer (paused in a hidden tab; the live panel
 * only), a check starting or ending on any instance, the tab coming back.
 * Each part is a stable container whose content is swapped (innerHTML), so a
 * refresh that arrives while another is in flight is queued (hx-sync) instead
 * of being lost with a replaced element; the forms and links inside do not
 * inherit the container's include and sync.
 */
function refreshOn(seconds?: number) {
  const events = "sse:check-finished, visibilitychange from:document";
  return seconds ? `every ${seconds}s, sse:check-started, ${events}` : events;
}

/** The state a part's refresh sends: what it shows (hidden inputs the container includes). */
function State(props: { values: Record<string, string | number | undefined> }) {
  return (
    <>
      {Object.entries(props.values).filter(([, v]) => v !== undefined && v !== "").map(([name, value]) => (
        <input type="hidden" class="state" name={name} value={String(value)} />
      ))}
    </>
  );
}

/**
 * The gauge, the cards and "Check now". It tells the server which check it
 * shows (`seen`): when a newer one finished, the answer carries the chart and
 * the table too (out-of-band swaps).
 */
export function LiveContent(props: { view: HealthView }) {
  const { report, metrics, now, filters, csrfToken } = props.view;
  const params = { window: filters.window, kind: filters.kind, specialization: filters.specialization };
  return (
    <>
      <State values={{ seen: report.last_check?.id ?? 0, window: filters.window }} />
      <h2 id="live-title" class="visually-hidden">Current status</h2>
      <div class="live-top">
        <Gauge rate={report.consistency_rate} status={report.status} />
        <CheckButton running={report.scan_running} csrfToken={csrfToken} hidden={params} />
      </div>
      <Cards report={report} metrics={metrics} now={now} />
    </>
  );
}

/** The live panel's container. */
function LivePanel(props: { view: HealthView }) {
  return (
    <section
      id="live"
      class="live"
      aria-labelledby="live-title"
      hx-get="/admin/health"
      hx-include="find .state"
      hx-trigger={refreshOn(props.view.refreshSeconds)}
      hx-sync="this:queue last"
      hx-disinherit="hx-include hx-sync"
      data-poll=""
    >
      <LiveContent view={props.view} />
    </section>
  );
}

/** The chart's content. */
export function HistoryContent(props: { view: HealthView }) {
  const { metrics, filters } = props.view;
  const params = { kind: filters.kind, specialization: filters.specialization };
  return (
    <>
      <State values={{ window: metrics.window }} />
      <HistoryChart metrics={metrics} params={params} />
    </>
  );
}

/** The table's content (its filter form is the state a refresh sends; the page goes back to its start). */
export function ViolationsContent(props: { view: HealthView }) {
  const { violations, filters, report, csrfToken } = props.view;
  return (
    <ViolationsTable
      page={violations}
      filters={filters}
      detectedAt={report.last_check?.finished_at ?? null}
      csrfToken={csrfToken}
    />
  );
}

/** A part's container: `id` is what htmx names in HX-Target. */
function Part(props: { id: string; include: string; children: unknown }) {
  return (
    <div
      id={props.id}
      hx-get="/admin/health"
      hx-include={props.include}
      hx-trigger={refreshOn()}
      hx-sync="this:queue last"
      hx-disinherit="hx-include hx-sync"
    >
      {props.children}
    </div>
  );
}

/**
 * The chart and the table again, as out-of-band swaps: sent with an answer
 * that changed what they show (a check, a repair, a poll that saw a new check).
 */
export function OtherParts(props: { view: HealthView }) {
  return (
    <>
      <div id="history-part" hx-swap-oob="innerHTML">
        <HistoryContent view={props.view} />
      </div>
      <div id="violations-part" hx-swap-oob="innerHTML">
        <ViolationsContent view={props.view} />
      </div>
    </>
  );
}

/** The whole page. */
export function HealthPage(
  props: {
    view: HealthView;
    assets: Assets;
    viewer: { email: string; csrfToken: string };
    /** The rollout section, rendered last (see rollout_panel.tsx). */
    rollout?: unknown;
  },
) {
  const { view } = props;
  return (
    <Layout title="Health" assets={props.assets} viewer={props.viewer}>
      <div class="dashboard" hx-ext="sse" sse-connect="/admin/health/events" sse-close="session-ended">
        <div class="page-head">
          <h1>Integrity health</h1>
          <form
            method="post"
            action="/admin/health/repair/preview"
            hx-post="/admin/health/repair/preview"
            hx-target="#repair-panel"
          >
            <input type="hidden" name="_csrf" value={view.csrfToken} />
            <button type="submit">Repair all…</button>
          </form>
        </div>
        <p id="connection-note" class="alert" role="status" hidden></p>
        {view.notice && (
          <p class="notice" role="status">
            {view.notice}
          </p>
        )}
        <LivePanel view={view} />
        <RepairSlot />
        <Part id="history-part" include="find .state">
          <HistoryContent view={view} />
        </Part>
        <Part id="violations-part" include="find form.filters">
          <ViolationsContent view={view} />
        </Part>
        {props.rollout}
      </div>
    </Layout>
  );
}

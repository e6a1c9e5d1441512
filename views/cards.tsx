/** The metric cards: status, last check, pairs, violations by kind, scheduler, next check. */
import type { HealthMetrics } from "../lib/integrity/health_metrics.ts";
import type { HealthReport } from "../lib/integrity/report.ts";
import { count, duration, kindLabel, percent, relative, utc } from "./format.ts";

/** A time as relative text with the absolute one in `datetime` and a tooltip. */
export function Time(props: { iso: string | null; now: number }) {
  return props.iso
    ? <time datetime={props.iso} title={utc(props.iso)}>{relative(props.iso, props.now)}</time>
    : <span>—</span>;
}

/** The cards of the status report and the scheduler's figures over the metrics window. */
export function Cards(props: { report: HealthReport; metrics: HealthMetrics; now: number }) {
  const { report, metrics, now } = props;
  const last = report.last_check;
  const kinds = Object.entries(report.violations_by_kind ?? {}).filter(([, n]) => n > 0);
  return (
    <div class="cards">
      <article class="card metric">
        <h3>Status</h3>
        <p class="metric-value">
          <span class={`badge badge-${report.status}`}>{report.status}</span>
        </p>
        <p class="muted">
          healthy ≥ {percent(report.thresholds.healthy, 0)}, degraded ≥{" "}
          {percent(report.thresholds.degraded, 0)}
        </p>
      </article>
      <article class="card metric">
        <h3>Last check</h3>
        <p class="metric-value">
          <Time iso={last?.finished_at ?? null} now={now} />
        </p>
        <p class="muted">
          {last ? <>{utc(last.finished_at)} · {last.trigger} · {duration(last.duration_ms)}</> : "none yet"}
        </p>
      </article>
      <article class="card metric">
        <h3>Pairs checked</h3>
        <p class="metric-value">{count(report.pairs_checked)}</p>
        <p class="muted">{count(report.consistent_pairs)} consistent</p>
      </article>
      <article class="card metric">
        <h3>Violations</h3>
        <p class="metric-value">{count(report.violation_count)}</p>
        {kinds.length === 0 ? <p class="muted">none</p> : (
          <ul class="kinds">
            {kinds.map(([kind, n]) => (
              <li>
                <a href={`/admin/health?kind=${kind}#violations`}>{kindLabel(kind)}</a>{" "}
                <span class="num">{count(n)}</span>
              </li>
            ))}
          </ul>
        )}
      </article>
      <article class="card metric">
        <h3>Scheduler</h3>
        <p class="metric-value">{percent(metrics.scheduler.success_rate, 1)}</p>
        <p class="muted">
          success of scheduled runs, last {metrics.window} ({metrics.scheduler.success} ok,{" "}
          {metrics.scheduler.failure} failed)
        </p>
      </article>
      <article class="card metric">
        <h3>Next check</h3>
        <p class="metric-value">
          <Time iso={report.next_check_at} now={now} />
        </p>
        <p class="muted">
          {report.next_check_at ? utc(report.next_check_at) : "schedule off on this instance"}
        </p>
      </article>
    </div>
  );
}

/**
 * Consistency rate and violations over a window, as a server-rendered SVG
 * (no chart library): the rate as a line against the 99 % and 95 % lines,
 * violations as bars; a <title>, and the same figures as a table.
 */
import type { HealthMetrics } from "../lib/integrity/health_metrics.ts";
import { count, percent, query, utc } from "./format.ts";

const W = 640;
const H = 200;
const PAD = { left: 44, right: 44, top: 10, bottom: 24 };

/** The chart of `metrics` (its window and history points); `params` keep the page's other filters. */
export function HistoryChart(props: { metrics: HealthMetrics; params: Record<string, string | undefined> }) {
  const { metrics } = props;
  const points = metrics.history.points;
  const from = new Date(metrics.from).getTime();
  const to = new Date(metrics.to).getTime();
  const minRate = Math.min(0.9, ...points.map((p) => p.min_consistency_rate));
  const maxViolations = Math.max(1, ...points.map((p) => p.violation_count));
  const x = (iso: string) =>
    PAD.left + ((new Date(iso).getTime() - from) / Math.max(1, to - from)) * (W - PAD.left - PAD.right);
  const y = (rate: number) => PAD.top + ((1 - rate) / (1 - minRate)) * (H - PAD.top - PAD.bottom);
  const barHeight = (v: number) => (v / maxViolations) * (H - PAD.top - PAD.bottom) * 0.5;
  const line = points.map((p, i) =>
    `${i ? "L" : "M"} ${x(p.at).toFixed(1)} ${y(p.consistency_rate).toFixed(1)}`
  ).join(" ");
  const bucketWidth = Math.max(
    2,
    (metrics.history.bucket_seconds * 1000 / Math.max(1, to - from)) * (W - PAD.left - PAD.right) * 0.8,
  );
  const title = `Consistency rate and violations, last ${metrics.window}: ${points.length} points`;
  return (
    <section id="history" class="card wide" aria-labelledby="history-title">
      <div class="card-head">
        <h2 id="history-title">History</h2>
        <nav class="segmented" aria-label="Window">
          {(["1h", "24h", "7d"] as const).map((w) => (
            <a
              href={`/admin/health${query({ ...props.params, window: w })}`}
              hx-get={`/admin/health${query({ ...props.params, window: w })}`}
              hx-target="#history-part"
              hx-push-url="true"
              aria-current={w === metrics.window ? "true" : undefined}
            >
              {w}
            </a>
          ))}
        </nav>
      </div>
      {points.length === 0
        ? <p class="empty">No finished check in the last {metrics.window}.</p>
        : (
          <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="chart-title">
            <title id="chart-title">{title}</title>
            {points.map((p) => (
              <rect
                class="chart-bar"
                x={(x(p.at) - bucketWidth / 2).toFixed(1)}
                y={(H - PAD.bottom - barHeight(p.violation_count)).toFixed(1)}
                width={bucketWidth.toFixed(1)}
                height={barHeight(p.violation_count).toFixed(1)}
              />
            ))}
            {[0.99, 0.95].filter((r) => r >= minRate).map((r) => (
              <g class={`chart-threshold chart-threshold-${r === 0.99 ? "healthy" : "degraded"}`}>
                <line x1={PAD.left} x2={W - PAD.right} y1={y(r).toFixed(1)} y2={y(r).toFixed(1)} />
                <text x={W - PAD.right + 4} y={(y(r) + 4).toFixed(1)}>{percent(r, 0)}</text>
              </g>
            ))}
            <path class="chart-line" d={line} />
            {points.map((p) => (
              <circle
                class="chart-dot"
                cx={x(p.at).toFixed(1)}
                cy={y(p.consistency_rate).toFixed(1)}
                r="2.5"
              />
            ))}
            <text class="chart-axis" x={PAD.left} y={H - 6}>{utc(metrics.from)}</text>
            <text class="chart-axis chart-axis-end" x={W - PAD.right} y={H - 6}>{utc(metrics.to)}</text>
            <text class="chart-axis" x="2" y={PAD.top + 8}>100 %</text>
            <text class="chart-axis" x="2" y={H - PAD.bottom}>{percent(minRate, 0)}</text>
          </svg>
        )}
      <details>
        <summary>The figures as a table</summary>
        <div class="table-scroll">
          <table>
            <caption class="visually-hidden">{title}</caption>
            <thead>
              <tr>
                <th scope="col">From (UTC)</th>
                <th scope="col">Checks</th>
                <th scope="col">Consistency</th>
                <th scope="col">Lowest</th>
                <th scope="col">Violations</th>
              </tr>
            </thead>
            <tbody>
              {points.map((p) => (
                <tr>
                  <td>{utc(p.at)}</td>
                  <td>{count(p.checks)}</td>
                  <td>{percent(p.consistency_rate)}</td>
                  <td>{percent(p.min_consistency_rate)}</td>
                  <td>{count(p.violation_count)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </section>
  );
}

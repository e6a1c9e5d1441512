/**
 * The consistency gauge: an SVG half circle filled to the rate, coloured by
 * status. The arc spans 90 % to 100 %, where the thresholds (95 %, 99 %) and
 * the daily movement are; lower rates leave it empty and are critical anyway.
 * The gauge and its value arc keep their ids across refreshes, so htmx's
 * settle step (layout.tsx's `attributesToSettle`) first gives the new arc the
 * old offset and colour, then the new ones, and CSS animates between them
 * (unless reduced motion is asked for).
 */
import { percent } from "./format.ts";

const ARC = "M 20 110 A 90 90 0 0 1 200 110";
/** The rate at the arc's start. */
export const GAUGE_FLOOR = 0.9;

/** Where on the arc (0..100 of its length) a rate falls. */
function at(rate: number): number {
  return Math.max(0, Math.min(100, ((rate - GAUGE_FLOOR) / (1 - GAUGE_FLOOR)) * 100));
}

/** A tick mark at `rate` on the arc (the 95 % and 99 % thresholds). */
function tick(rate: number) {
  const angle = Math.PI * (1 - at(rate) / 100);
  const [x1, y1] = [110 + 80 * Math.cos(angle), 110 - 80 * Math.sin(angle)];
  const [x2, y2] = [110 + 100 * Math.cos(angle), 110 - 100 * Math.sin(angle)];
  return (
    <line class="gauge-tick" x1={x1.toFixed(1)} y1={y1.toFixed(1)} x2={x2.toFixed(1)} y2={y2.toFixed(1)} />
  );
}

/** The gauge for `rate` (null before the first check) and `status`. */
export function Gauge(props: { rate: number | null; status: string }) {
  const value = props.rate === null ? 0 : at(props.rate);
  const now = props.rate === null ? undefined : (props.rate * 100).toFixed(2);
  const label = props.rate === null ? "no check yet" : `${percent(props.rate)} consistent (${props.status})`;
  return (
    <div
      id="gauge"
      class={`gauge gauge-${props.status}`}
      role="meter"
      aria-label="Consistency rate"
      aria-valuemin="0"
      aria-valuemax="100"
      aria-valuenow={now}
      aria-valuetext={label}
    >
      <svg viewBox="0 0 220 125" aria-hidden="true" focusable="false">
        <path class="gauge-track" d={ARC} pathLength="100" />
        <path
          id="gauge-value"
          class="gauge-value"
          d={ARC}
          pathLength="100"
          stroke-dasharray="100 100"
          stroke-dashoffset={(100 - value).toFixed(2)}
          stroke-opacity={value < 0.5 ? "0" : "1"}
        />
        {tick(0.95)}
        {tick(0.99)}
        <text class="gauge-end" x="20" y="124">90 %</text>
        <text class="gauge-end gauge-end-right" x="200" y="124">100 %</text>
      </svg>
      <p class="gauge-text">
        <span class="gauge-number">{props.rate === null ? "—" : percent(props.rate)}</span>
        <span class={`badge badge-${props.status}`}>{props.status}</span>
      </p>
    </div>
  );
}

/**
 * Event-loop delay, sampled with a timer: how late a 10 ms interval fires is
 * how long the loop was busy. Replaces prom-client's
 * `monitorEventLoopDelay`-based gauges, which read nothing under Deno (its
 * histogram never records a delay), and its `nodejs_eventloop_lag_seconds`,
 * which measured one setImmediate per scrape (most of a scrape's cost).
 */
import client from "prom-client";

const INTERVAL_MS = 10;
// A scrape every 15 s keeps ~1,500 samples; a scraper gone for long keeps the latest ones.
const MAX_SAMPLES = 60_000;

const QUANTILES = [["p50", 0.5], ["p90", 0.9], ["p99", 0.99]] as const;

/** Starts sampling; registers nodejs_eventloop_lag_seconds and its _{min,max,mean,stddev,p50,p90,p99}_ gauges. */
export function registerEventLoopDelay(registry: client.Registry) {
  let samples: number[] = [];
  let latest = 0;
  let expected = performance.now() + INTERVAL_MS;
  const timer = setInterval(() => {
    const now = performance.now();
    latest = Math.max(0, now - expected) / 1000;
    if (samples.length < MAX_SAMPLES) samples.push(latest);
    expected = now + INTERVAL_MS;
  }, INTERVAL_MS);
  // Sampling never keeps a process alive (tests, tasks).
  Deno.unrefTimer(timer);

  const gauge = (name: string, help: string, collect?: (this: client.Gauge) => void) =>
    new client.Gauge({ name: `nodejs_eventloop_lag_${name}_seconds`, help, registers: [registry], collect });
  // Registered first: the registry reads metrics in order, so its collect sets the others in time.
  gauge("mean", "The mean of the event loop delays since the last scrape", function () {
    const taken = samples.sort((a, b) => a - b);
    samples = [];
    if (taken.length === 0) return;
    const mean = taken.reduce((a, b) => a + b, 0) / taken.length;
    this.set(mean);
    min.set(taken[0]);
    max.set(taken[taken.length - 1]);
    stddev.set(Math.sqrt(taken.reduce((a, b) => a + (b - mean) ** 2, 0) / taken.length));
    for (const [g, q] of quantiles) g.set(taken[Math.min(taken.length - 1, Math.floor(q * taken.length))]);
  });
  new client.Gauge({
    name: "nodejs_eventloop_lag_seconds",
    help: "The latest event loop delay sampled",
    registers: [registry],
    collect() {
      this.set(latest);
    },
  });
  const min = gauge("min", "The minimum event loop delay since the last scrape");
  const max = gauge("max", "The maximum event loop delay since the last scrape");
  const stddev = gauge("stddev", "The standard deviation of the event loop delays since the last scrape");
  const quantiles = QUANTILES.map(([name, q]) =>
    [
      gauge(name, `The ${name.slice(1)}th percentile of the event loop delays since the last scrape`),
      q,
    ] as const
  );
}

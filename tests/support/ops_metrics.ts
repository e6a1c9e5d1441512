/**
 * Which metrics the ops files use: the alerting and recording rules (ops/prometheus/alerts.yml) and
 * the Grafana dashboard (ops/grafana/dashboards/levelguard.json). Tests compare this with what
 * Levelguard exposes, so a renamed metric cannot silently empty a panel or disarm an alert. A
 * recorded series (`job:…:p95_5m`) counts as the scraped metrics its recording rule reads.
 *
 * Metric names are picked out of PromQL lexically (see `metricNames`, `metricSelectors`), which is
 * enough for selector-style expressions like ours; a name written as `{__name__="…"}` is not seen.
 */

import { parse } from "yaml";

/** A parsed YAML value. */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

/** Parses a YAML file's text (the `yaml` package; a duplicate key is an error). */
export function parseYaml(text: string): YamlValue {
  return parse(text, { uniqueKeys: true }) as YamlValue;
}

/** One alerting rule of alerts.yml. */
export interface AlertRule {
  group: string;
  alert: string;
  expr: string;
  for: string | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** One recording rule of alerts.yml. */
export interface RecordingRule {
  group: string;
  record: string;
  expr: string;
}

/** A metric selector of a PromQL expression: the name and its label matchers (`{…}`, or ""). */
export interface Selector {
  name: string;
  matchers: string;
}

/** One query of a Grafana panel. */
export interface PanelQuery {
  panel: string;
  expr: string;
}

/** Host metrics the ops files use; node_exporter exposes them, not Levelguard. */
export const NODE_EXPORTER_METRICS: readonly string[] = [
  "node_filesystem_avail_bytes",
  "node_filesystem_readonly",
  "node_filesystem_size_bytes",
  "node_memory_MemAvailable_bytes",
  "node_memory_MemTotal_bytes",
];

/** Series Prometheus makes itself (not exposed by any target). */
const PROMETHEUS_SYNTHETIC = new Set([
  "up",
  "scrape_duration_seconds",
  "scrape_samples_scraped",
  "scrape_samples_post_metric_relabeling",
  "scrape_series_added",
  "ALERTS",
  "ALERTS_FOR_STATE",
]);

const ALERTS_FILE = new URL("../../ops/prometheus/alerts.yml", import.meta.url);
const DASHBOARD_FILE = new URL("../../ops/grafana/dashboards/levelguard.json", import.meta.url);

// ---------------------------------------------------------------- PromQL

/** Aggregations, functions and keywords: identifiers of PromQL that never name a metric. */
const NOT_METRICS = new Set([
  // keywords and modifiers
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "offset",
  "bool",
  "atan2",
  "start",
  "end",
  "Inf",
  "inf",
  "NaN",
  "nan",
  // aggregation operators
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
  // functions
  "abs",
  "absent",
  "absent_over_time",
  "acos",
  "acosh",
  "asin",
  "asinh",
  "atan",
  "atanh",
  "avg_over_time",
  "ceil",
  "changes",
  "clamp",
  "clamp_max",
  "clamp_min",
  "cos",
  "cosh",
  "count_over_time",
  "day_of_month",
  "day_of_week",
  "day_of_year",
  "days_in_month",
  "deg",
  "delta",
  "deriv",
  "exp",
  "floor",
  "histogram_avg",
  "histogram_count",
  "histogram_fraction",
  "histogram_quantile",
  "histogram_stddev",
  "histogram_stdvar",
  "histogram_sum",
  "holt_winters",
  "double_exponential_smoothing",
  "hour",
  "idelta",
  "increase",
  "irate",
  "label_join",
  "label_replace",
  "last_over_time",
  "ln",
  "log10",
  "log2",
  "mad_over_time",
  "max_over_time",
  "min_over_time",
  "minute",
  "month",
  "pi",
  "predict_linear",
  "present_over_time",
  "quantile_over_time",
  "rad",
  "rate",
  "resets",
  "round",
  "scalar",
  "sgn",
  "sin",
  "sinh",
  "sort",
  "sort_by_label",
  "sort_by_label_desc",
  "sort_desc",
  "sqrt",
  "stddev_over_time",
  "stdvar_over_time",
  "sum_over_time",
  "tan",
  "tanh",
  "time",
  "timestamp",
  "vector",
  "year",
  // label names that appear bare in grouping lists (removed before this check; listed for safety)
  "le",
]);

/** Removes `#` comments (to the end of the line) outside string literals. */
function stripComments(expr: string): string {
  let out = "";
  let quote: string | null = null;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (quote) {
      out += ch;
      if (ch === "\\" && quote !== "`" && i + 1 < expr.length) out += expr[++i];
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'" || ch === "`") {
      quote = ch;
      out += ch;
    } else if (ch === "#") {
      while (i + 1 < expr.length && expr[i + 1] !== "\n") i++;
    } else {
      out += ch;
    }
  }
  return out;
}

/**
 * The metric names a PromQL expression selects (sorted, unique): string literals, label matchers
 * `{…}`, ranges and subqueries `[…]`, grouping label lists (`by (…)`, `on (…)`, `group_left (…)` …),
 * durations, numbers and Grafana variables (`$instance`, `${var}`, `$__rate_interval`, `[[var]]`)
 * are dropped, then every identifier left that is not a function call, an aggregation or a keyword
 * is a metric name. Histogram series keep their suffix (`…_bucket`); see `familyOf`.
 */
export function metricNames(expr: string): string[] {
  let s = stripComments(expr);
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  s = s.replace(/\[\[[A-Za-z0-9_:.]+\]\]|\$\{[^}]*\}|\$[A-Za-z0-9_]+/g, " ");
  s = s.replace(/\{[^}]*\}/g, " ");
  s = s.replace(/\[[^\]]*\]/g, " ");
  s = s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const name = m[0];
    const rest = s.slice(m.index! + name.length);
    if (/^\s*\(/.test(rest)) continue; // a function call or an aggregation
    if (NOT_METRICS.has(name)) continue;
    names.add(name);
  }
  return [...names].sort();
}

/**
 * Every metric selector of a PromQL expression, in order: a metric name (as `metricNames` finds
 * them) with the text of its label matchers, braces included (`{job="node", fstype!~"tmpfs"}`), or
 * "" when it has none. Strings, ranges and grouping lists are skipped; a matcher's string may hold
 * braces.
 */
export function metricSelectors(expr: string): Selector[] {
  const s = stripComments(expr);
  // The same text with every string's content and every grouping list blanked, so that what is
  // left at brace depth 0 is names, operators and numbers; offsets stay those of `s`.
  let masked = s.replace(
    /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g,
    (m) => m[0] + " ".repeat(m.length - 2) + m[0],
  );
  masked = masked.replace(
    /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g,
    (m) => " ".repeat(m.length),
  );
  masked = masked.replace(/\[[^\]]*\]/g, (m) => " ".repeat(m.length));
  masked = masked.replace(/\$\{[^}]*\}|\$[A-Za-z0-9_]+/g, (m) => " ".repeat(m.length));
  const out: Selector[] = [];
  let depth = 0;
  for (let i = 0; i < masked.length; i++) {
    const ch = masked[i];
    if (ch === "{") depth++;
    else if (ch === "}") depth--;
    if (depth > 0 || !/[A-Za-z_:]/.test(ch) || (i > 0 && /[\w.:]/.test(masked[i - 1]))) continue;
    const name = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(masked.slice(i))![0];
    const rest = masked.slice(i + name.length);
    i += name.length - 1;
    if (/^\s*\(/.test(rest) || NOT_METRICS.has(name)) continue;
    const brace = /^\s*\{/.exec(rest);
    if (!brace) {
      out.push({ name, matchers: "" });
      continue;
    }
    const open = i + 1 + brace[0].length - 1;
    const close = masked.indexOf("}", open);
    out.push({ name, matchers: s.slice(open, close + 1) });
  }
  return out;
}

/**
 * The metric family of a series name: `x_bucket` is histogram `x`; `x_sum` and `x_count` are `x`
 * only when `x` is one of `histograms` (a counter may well be called `…_count`).
 */
export function familyOf(name: string, histograms: Set<string>): string {
  if (name.endsWith("_bucket")) return name.slice(0, -"_bucket".length);
  for (const suffix of ["_sum", "_count"]) {
    if (name.endsWith(suffix) && histograms.has(name.slice(0, -suffix.length))) {
      return name.slice(0, -suffix.length);
    }
  }
  return name;
}

// ---------------------------------------------------------------- the ops files

/** The alerting rules of ops/prometheus/alerts.yml, in file order. */
export async function alertRules(): Promise<AlertRule[]> {
  const doc = asMap(parseYaml(await Deno.readTextFile(ALERTS_FILE)), "alerts.yml");
  const rules: AlertRule[] = [];
  for (const group of asList(doc.groups, "groups")) {
    const g = asMap(group, "group");
    const name = asString(g.name, "group name");
    for (const rule of asList(g.rules, `rules of ${name}`)) {
      const r = asMap(rule, `rule of ${name}`);
      if (r.alert === undefined) continue; // a recording rule
      const alert = asString(r.alert, "alert");
      rules.push({
        group: name,
        alert,
        expr: asString(r.expr, `expr of ${alert}`),
        for: r.for === undefined ? null : asString(r.for, `for of ${alert}`),
        labels: stringMap(r.labels, `labels of ${alert}`),
        annotations: stringMap(r.annotations, `annotations of ${alert}`),
      });
    }
  }
  return rules;
}

/** The recording rules of ops/prometheus/alerts.yml, in file order. */
export async function recordingRules(): Promise<RecordingRule[]> {
  const doc = asMap(parseYaml(await Deno.readTextFile(ALERTS_FILE)), "alerts.yml");
  const rules: RecordingRule[] = [];
  for (const group of asList(doc.groups, "groups")) {
    const g = asMap(group, "group");
    const name = asString(g.name, "group name");
    for (const rule of asList(g.rules, `rules of ${name}`)) {
      const r = asMap(rule, `rule of ${name}`);
      if (r.record === undefined) continue;
      const record = asString(r.record, "record");
      rules.push({ group: name, record, expr: asString(r.expr, `expr of ${record}`) });
    }
  }
  return rules;
}

/** Every query of every panel of the Grafana dashboard (rows' nested panels included). */
export async function dashboardQueries(): Promise<PanelQuery[]> {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD_FILE));
  const out: PanelQuery[] = [];
  const walk = (panels: unknown) => {
    if (!Array.isArray(panels)) return;
    for (const panel of panels) {
      for (const target of panel?.targets ?? []) {
        if (typeof target?.expr === "string" && target.expr.trim()) {
          out.push({ panel: String(panel.title ?? ""), expr: target.expr });
        }
      }
      walk(panel?.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/**
 * Every metric name (raw, with histogram suffixes) the recording rules, alerts and panels use, with
 * where. A series a recording rule of alerts.yml records stands for the names its expression reads
 * (recursively); a recorded-looking name no rule records is kept as it is, so that it shows up as
 * missing from a scrape.
 */
async function rawUsage(): Promise<Map<string, string[]>> {
  const recorded = new Map((await recordingRules()).map((r) => [r.record, r.expr]));
  const sources = (name: string, seen: Set<string> = new Set()): string[] => {
    const expr = recorded.get(name);
    if (expr === undefined || seen.has(name)) return [name];
    seen.add(name);
    return metricNames(expr).flatMap((n) => sources(n, seen));
  };
  const usage = new Map<string, string[]>();
  const add = (expr: string, place: string) => {
    for (const name of metricNames(expr).flatMap((n) => sources(n))) {
      const places = usage.get(name) ?? [];
      if (!places.includes(place)) places.push(place);
      usage.set(name, places);
    }
  };
  for (const rule of recorded.keys()) add(rule, `alerts.yml: ${rule}`);
  for (const rule of await alertRules()) add(rule.expr, `alerts.yml: ${rule.alert}`);
  for (const query of await dashboardQueries()) add(query.expr, `levelguard.json: ${query.panel}`);
  return usage;
}

/**
 * Levelguard's and its process's metric families used by a rule or a dashboard panel, each with
 * where (`alerts.yml: <record or alert>`, `levelguard.json: <panel title>`), sorted by name; node_exporter's
 * node_* metrics and Prometheus's own series (`up`) are left out. Histogram series map to their family.
 */
export async function metricsUsedByOps(): Promise<Map<string, string[]>> {
  const raw = await rawUsage();
  const histograms = new Set(
    [...raw.keys()].filter((n) => n.endsWith("_bucket")).map((n) => n.slice(0, -"_bucket".length)),
  );
  const families = new Map<string, string[]>();
  for (const [name, places] of raw) {
    if (name.startsWith("node_") || PROMETHEUS_SYNTHETIC.has(name)) continue;
    const family = familyOf(name, histograms);
    const merged = families.get(family) ?? [];
    for (const place of places) if (!merged.includes(place)) merged.push(place);
    families.set(family, merged);
  }
  return new Map([...families].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
}

/** The node_* metric names the alerts and panels use (should equal NODE_EXPORTER_METRICS). */
export async function nodeMetricsUsedByOps(): Promise<string[]> {
  return [...(await rawUsage()).keys()].filter((n) => n.startsWith("node_")).sort();
}

/**
 * alerts.yml's deploy-time values as its header states them: the runbook base (`runbook base  <url>`)
 * and the sed line that changes them (`#   sed -i …`), without the comment marker.
 */
export async function deployTimeValues(): Promise<{ runbookBase: string; sedLine: string }> {
  const text = await Deno.readTextFile(ALERTS_FILE);
  const base = /^#\s+runbook base\s+(\S+)$/m.exec(text);
  const sed = /^#\s+(sed -i .*)$/m.exec(text);
  if (!base || !sed) throw new Error("alerts.yml: the header names no runbook base or no sed line");
  return { runbookBase: base[1], sedLine: sed[1] };
}

/** The docs/runbooks.md anchors the alerts' runbook_url annotations point at, sorted, unique. */
export async function runbookAnchors(): Promise<string[]> {
  const anchors = new Set<string>();
  for (const rule of await alertRules()) {
    const url = rule.annotations.runbook_url;
    const hash = url?.indexOf("#") ?? -1;
    if (url && hash >= 0) anchors.add(url.slice(hash + 1));
  }
  return [...anchors].sort();
}

// ---------------------------------------------------------------- reading the parsed YAML

function asMap(value: YamlValue | undefined, what: string): { [key: string]: YamlValue } {
  if (value === null || value === undefined || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what}: expected a mapping`);
  }
  return value;
}

function asList(value: YamlValue | undefined, what: string): YamlValue[] {
  if (!Array.isArray(value)) throw new Error(`${what}: expected a sequence`);
  return value;
}

function asString(value: YamlValue | undefined, what: string): string {
  if (typeof value !== "string") throw new Error(`${what}: expected a string`);
  return value;
}

function stringMap(value: YamlValue | undefined, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(asMap(value, what))) out[k] = asString(v, `${what}.${k}`);
  return out;
}

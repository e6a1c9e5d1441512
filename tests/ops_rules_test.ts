/**
 * The ops files: Prometheus alert rules (promtool check + unit tests), the scrape config, the
 * Grafana dashboard and provisioning, and the PromQL name extraction of tests/support/ops_metrics.ts.
 * The promtool tests are skipped when promtool (Debian's `prometheus` package) is not installed.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import {
  alertRules,
  dashboardQueries,
  familyOf,
  metricNames,
  metricsUsedByOps,
  NODE_EXPORTER_METRICS,
  nodeMetricsUsedByOps,
  parseYaml,
  runbookAnchors,
  type YamlValue,
} from "./support/ops_metrics.ts";

const ROOT = new URL("../", import.meta.url);
const PROMETHEUS_DIR = new URL("ops/prometheus/", ROOT);
const DASHBOARD = new URL("ops/grafana/dashboards/levelguard.json", ROOT);

/** Whether promtool is on PATH. */
async function hasPromtool(): Promise<boolean> {
  try {
    const out = await new Deno.Command("promtool", { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return out.success;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

const noPromtool = !(await hasPromtool());

/** Runs promtool in `cwd` and fails with its output unless it exits 0. */
async function promtool(args: string[], cwd: URL = PROMETHEUS_DIR): Promise<string> {
  const out = await new Deno.Command("promtool", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success, `promtool ${args.join(" ")} failed:\n${text}`);
  return text;
}

Deno.test({
  name: "promtool check rules accepts alerts.yml",
  ignore: noPromtool,
  fn: async () => {
    assertMatch(await promtool(["check", "rules", "alerts.yml"]), /SUCCESS: \d+ rules found/);
  },
});

Deno.test({
  name: "promtool test rules: every alert fires and clears as alerts_test.yml expects",
  ignore: noPromtool,
  fn: async () => {
    assertMatch(await promtool(["test", "rules", "alerts_test.yml"]), /SUCCESS/);
  },
});

Deno.test({
  name: "promtool check config accepts prometheus.yml (and the rule file it names)",
  ignore: noPromtool,
  fn: async () => {
    const out = await promtool(["check", "config", "prometheus.yml"]);
    assertMatch(out, /SUCCESS: 1 rule files found/);
    assertMatch(out, /prometheus\.yml is valid prometheus config file syntax/);
  },
});

Deno.test({
  name: "every dashboard query is valid PromQL (Grafana variables replaced)",
  ignore: noPromtool,
  fn: async () => {
    const queries = await dashboardQueries();
    const rules = queries.map((q, i) => ({
      record: `levelguard_dashboard_query_${i}`,
      expr: q.expr.replaceAll("$instance", ".*").replaceAll("$__rate_interval", "1m").replaceAll(
        "$__range",
        "6h",
      ),
    }));
    const dir = await Deno.makeTempDir({ prefix: "levelguard-ops-" });
    try {
      // JSON is YAML: promtool reads it as a rule file.
      await Deno.writeTextFile(
        `${dir}/dashboard.rules.yml`,
        JSON.stringify({ groups: [{ name: "dashboard", rules }] }),
      );
      assertMatch(
        await promtool(["check", "rules", "dashboard.rules.yml"], new URL(`file://${dir}/`)),
        new RegExp(`SUCCESS: ${rules.length} rules found`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every alert has a warning/critical severity, a summary, a description and a runbook in docs/runbooks.md", async () => {
  const rules = await alertRules();
  assert(rules.length >= 16, `only ${rules.length} alerts`);
  for (const rule of rules) {
    assertMatch(rule.alert, /^Levelguard[A-Z][A-Za-z]+$/);
    assertMatch(rule.group, /^Levelguard[A-Z][A-Za-z]+$/);
    assert(
      ["warning", "critical"].includes(rule.labels.severity),
      `${rule.alert}: severity ${rule.labels.severity}`,
    );
    assert(rule.annotations.summary?.trim(), `${rule.alert}: no summary`);
    assert(
      rule.annotations.description?.includes("$"),
      `${rule.alert}: the description does not show the value`,
    );
    assertMatch(rule.annotations.runbook_url ?? "", /^docs\/runbooks\.md#[a-z0-9-]+$/);
  }
  // Warning and critical of the same alert share the runbook.
  const byName = Map.groupBy(rules, (r) => r.alert);
  for (const [name, variants] of byName) {
    assertEquals(new Set(variants.map((r) => r.annotations.runbook_url)).size, 1, name);
  }
  assertEquals(
    [...byName.keys()].sort(),
    [
      "LevelguardApiErrorRate",
      "LevelguardApiLatencyHigh",
      "LevelguardConsistencyLow",
      "LevelguardDiskUsage",
      "LevelguardDown",
      "LevelguardHostMemory",
      "LevelguardNoSuccessfulCheck",
      "LevelguardNotificationsFailing",
      "LevelguardSchedulerFailures",
    ],
  );
  assertEquals(await runbookAnchors(), [
    "api-error-rate",
    "api-latency",
    "consistency-rate",
    "disk-usage",
    "host-memory",
    "levelguard-down",
    "no-successful-check",
    "notifications-failing",
    "scheduler-failures",
  ]);
  // Latency leaves the SSE route out.
  for (const rule of rules.filter((r) => r.alert === "LevelguardApiLatencyHigh")) {
    assert(rule.expr.includes('route!="/admin/health/events"'), rule.expr);
  }
});

Deno.test("the Grafana dashboard: every panel has a title and a PromQL query on the templated data source", async () => {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD));
  assertEquals(dashboard.uid, "levelguard");
  assert(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  const variables = new Map<string, Record<string, unknown>>(
    dashboard.templating.list.map((v: Record<string, unknown>) => [v.name, v]),
  );
  assertEquals([variables.get("datasource")?.type, variables.get("datasource")?.query], [
    "datasource",
    "prometheus",
  ]);
  assertEquals(variables.get("instance")?.type, "query");
  const ids = new Set<number>();
  for (const panel of dashboard.panels) {
    assert(typeof panel.title === "string" && panel.title.trim(), `panel ${panel.id} has no title`);
    assert(!ids.has(panel.id), `duplicate panel id ${panel.id}`);
    ids.add(panel.id);
    assertEquals(panel.datasource, { type: "prometheus", uid: "${datasource}" }, panel.title);
    const exprs = (panel.targets ?? []).map((t: { expr?: string }) => t.expr).filter((e: unknown) => e);
    assert(exprs.length >= 1, `${panel.title}: no query`);
    for (const expr of exprs) assert(expr.includes('instance=~"$instance"'), `${panel.title}: ${expr}`);
  }
  const gauge = dashboard.panels.find((p: { title: string }) => p.title === "Consistency rate");
  assertEquals(gauge.type, "gauge");
  assertEquals(gauge.fieldConfig.defaults.thresholds.steps, [
    { color: "red", value: null },
    { color: "yellow", value: 0.95 },
    { color: "green", value: 0.99 },
  ]);
  for (
    const q of (await dashboardQueries()).filter((q) => q.expr.includes("levelguard_http_request_duration"))
  ) {
    assert(q.expr.includes('route!="/admin/health/events"'), `${q.panel}: the SSE route is not left out`);
  }
});

Deno.test("the Grafana provisioning files name a Prometheus data source and the dashboards folder", async () => {
  const read = async (path: string) =>
    parseYaml(await Deno.readTextFile(new URL(path, ROOT))) as Record<string, YamlValue>;
  const ds = (await read("ops/grafana/provisioning/datasources/prometheus.yml")).datasources as Record<
    string,
    YamlValue
  >[];
  assertEquals([ds[0].type, ds[0].uid, ds[0].url], ["prometheus", "prometheus", "http://127.0.0.1:9090"]);
  const providers = (await read("ops/grafana/provisioning/dashboards/levelguard.yml")).providers as Record<
    string,
    YamlValue
  >[];
  assertEquals(providers[0].type, "file");
  assertEquals(
    (providers[0].options as Record<string, YamlValue>).path,
    "/var/lib/grafana/dashboards/levelguard",
  );
});

Deno.test("PromQL name extraction on our expressions", async () => {
  const rules = await alertRules();
  const exprOf = (alert: string) => rules.find((r) => r.alert === alert)!.expr;
  assertEquals(metricNames(exprOf("LevelguardApiErrorRate")), ["levelguard_http_requests_total"]);
  assertEquals(metricNames(exprOf("LevelguardApiLatencyHigh")), [
    "levelguard_http_request_duration_seconds_bucket",
  ]);
  assertEquals(metricNames(exprOf("LevelguardSchedulerFailures")), ["levelguard_scheduler_runs_total"]);
  assertEquals(metricNames(exprOf("LevelguardNotificationsFailing")), ["levelguard_notifications_total"]);
  assertEquals(metricNames(exprOf("LevelguardNoSuccessfulCheck")), [
    "levelguard_seconds_since_last_successful_check",
    "process_start_time_seconds",
  ]);
  assertEquals(metricNames(exprOf("LevelguardDiskUsage")), [
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
  ]);
  assertEquals(metricNames(exprOf("LevelguardDown")), ["up"]);
  // Grafana variables, grouping lists, _sum/_count over a histogram.
  assertEquals(
    metricNames(
      'sum by (trigger) (rate(levelguard_check_duration_seconds_sum{instance=~"$instance"}[$__rate_interval]))\n' +
        '  / sum by (trigger) (rate(levelguard_check_duration_seconds_count{instance=~"$instance"}[30m]))',
    ),
    ["levelguard_check_duration_seconds_count", "levelguard_check_duration_seconds_sum"],
  );
  assertEquals(
    metricNames(
      'histogram_quantile(0.95, sum by (route, le) (rate(levelguard_http_request_duration_seconds_bucket{instance=~"$instance", route!="/admin/health/events"}[$__rate_interval])))',
    ),
    ["levelguard_http_request_duration_seconds_bucket"],
  );
  // Strings with parentheses and braces, comments, offsets, group_left, scientific numbers, subqueries.
  assertEquals(
    metricNames(
      'label_replace(foo{a="b(c) {x}"}, "dst", "$1", "src", "(.*)") # not_a_metric here\n' +
        "  * on(instance) group_left(version, commit) bar offset 5m\n" +
        "  > bool 4.2e9 and max_over_time(baz:rate5m[1h:5m]) or vector(0) unless absent(qux)",
    ),
    ["bar", "baz:rate5m", "foo", "qux"],
  );
  assertEquals(metricNames("sum without (le) (x_bucket) / ignoring(le) y"), ["x_bucket", "y"]);
});

Deno.test("familyOf strips _bucket always and _sum/_count only from histograms", () => {
  const histograms = new Set(["levelguard_check_duration_seconds"]);
  assertEquals(
    familyOf("levelguard_http_request_duration_seconds_bucket", histograms),
    "levelguard_http_request_duration_seconds",
  );
  assertEquals(
    familyOf("levelguard_check_duration_seconds_sum", histograms),
    "levelguard_check_duration_seconds",
  );
  assertEquals(
    familyOf("levelguard_check_duration_seconds_count", histograms),
    "levelguard_check_duration_seconds",
  );
  assertEquals(familyOf("levelguard_widget_count", histograms), "levelguard_widget_count");
  assertEquals(familyOf("levelguard_checks_total", histograms), "levelguard_checks_total");
});

Deno.test("metricsUsedByOps: families with their places; node_exporter's and Prometheus's own left out", async () => {
  const used = await metricsUsedByOps();
  const names = [...used.keys()];
  assertEquals(names, [...names].sort());
  for (const name of names) {
    assertMatch(name, /^(levelguard_|process_|nodejs_)/);
    assert(!/_bucket$/.test(name), name);
  }
  assertEquals(used.get("levelguard_consistency_rate"), [
    "alerts.yml: LevelguardConsistencyLow",
    "levelguard.json: Consistency rate",
    "levelguard.json: Consistency rate history",
  ]);
  assertEquals(used.get("levelguard_check_duration_seconds"), ["levelguard.json: Check duration by trigger"]);
  assertEquals(used.get("levelguard_http_request_duration_seconds"), [
    "alerts.yml: LevelguardApiLatencyHigh",
    "levelguard.json: Latency p50 / p95 / p99 by route",
  ]);
  assertEquals(used.get("process_start_time_seconds"), ["alerts.yml: LevelguardNoSuccessfulCheck"]);
  assertEquals(used.has("up"), false);
  assertEquals(await nodeMetricsUsedByOps(), [...NODE_EXPORTER_METRICS].sort());
});

Deno.test("every levelguard_* metric the ops files use is registered in lib/metrics.ts", async () => {
  const source = await Deno.readTextFile(new URL("lib/metrics.ts", ROOT));
  for (const [name, places] of await metricsUsedByOps()) {
    if (!name.startsWith("levelguard_")) continue;
    assert(source.includes(`"${name}"`), `${name} (${places.join(", ")}) is not in lib/metrics.ts`);
  }
});

/**
 * The ops files: the Prometheus rules (promtool check and unit tests, absolute runbook links, the
 * deploy-time line that changes the runbook base and the jobs, the recording rules the alerts and
 * panels share), the scrape config, the unit's memory limit the memory alert divides by, the
 * Grafana dashboard (rows, import inputs, variables, selectors) and provisioning, and the PromQL
 * name extraction of tests/support/ops_metrics.ts. The promtool parts are skipped when promtool
 * (Debian's `prometheus` package) is not installed.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import {
  alertRules,
  dashboardQueries,
  deployTimeValues,
  familyOf,
  metricNames,
  metricSelectors,
  metricsUsedByOps,
  NODE_EXPORTER_METRICS,
  nodeMetricsUsedByOps,
  parseYaml,
  recordingRules,
  runbookAnchors,
  type YamlValue,
} from "./support/ops_metrics.ts";

const ROOT = new URL("../", import.meta.url);
const PROMETHEUS_DIR = new URL("ops/prometheus/", ROOT);
const DASHBOARD = new URL("ops/grafana/dashboards/levelguard.json", ROOT);
const UNIT = new URL("ops/systemd/levelguard.service", ROOT);

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

/** The dashboard's JSON. */
async function dashboard() {
  return JSON.parse(await Deno.readTextFile(DASHBOARD));
}

/** The thresholds an alert's rules compare with (`> 0.2`, `< 0.95`), sorted. */
async function thresholdsOf(alert: string): Promise<number[]> {
  const rules = (await alertRules()).filter((r) => r.alert === alert);
  return rules.map((r) => Number(/[<>]\s*([\d.]+)\s*$/.exec(r.expr.trim())![1])).sort((a, b) => a - b);
}

Deno.test({
  name: "promtool check rules accepts alerts.yml",
  ignore: noPromtool,
  fn: async () => {
    assertMatch(await promtool(["check", "rules", "alerts.yml"]), /SUCCESS: \d+ rules found/);
  },
});

Deno.test({
  name:
    "promtool test rules: every alert fires and clears, every recording rule records, as alerts_test.yml expects",
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
      expr: q.expr.replaceAll("$instance", ".*").replaceAll("$job", "levelguard")
        .replaceAll("$__rate_interval", "1m").replaceAll("$__range", "6h"),
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

Deno.test("every alert has a severity, a summary, a description and an absolute runbook URL on the one documented base", async () => {
  const rules = await alertRules();
  assert(rules.length >= 22, `only ${rules.length} alerts`);
  const { runbookBase } = await deployTimeValues();
  assertMatch(runbookBase, /^https:\/\/[^\s#]+\/docs\/runbooks\.md$/);
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
      `${rule.alert}: the description does not show the value or the labels`,
    );
    // Absolute: Alertmanager, Slack and PagerDuty show it as it is.
    const url = rule.annotations.runbook_url ?? "";
    assertEquals(new URL(url).protocol, "https:", `${rule.alert}: ${url}`);
    assertMatch(url.slice(runbookBase.length), /^#[a-z0-9-]+$/, `${rule.alert}: ${url}`);
    assert(url.startsWith(runbookBase), `${rule.alert}: ${url} is not on ${runbookBase}`);
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
      "LevelguardDiskFillingUp",
      "LevelguardDiskUsage",
      "LevelguardDown",
      "LevelguardHostMemory",
      "LevelguardHostMetricsMissing",
      "LevelguardMemoryHigh",
      "LevelguardNoSuccessfulCheck",
      "LevelguardNotificationsFailing",
      "LevelguardSchedulerFailures",
      "LevelguardTargetMissing",
    ],
  );
  assertEquals(await runbookAnchors(), [
    "api-error-rate",
    "api-latency",
    "consistency-rate",
    "disk-filling-up",
    "disk-usage",
    "host-memory",
    "host-metrics-missing",
    "levelguard-down",
    "memory-limit",
    "no-successful-check",
    "notifications-failing",
    "scheduler-failures",
    "target-missing",
  ]);
});

Deno.test("every selector of a scraped metric in alerts.yml names its job, and only the two documented jobs", async () => {
  const exprs = [
    ...(await recordingRules()).map((r) => ({ where: r.record, expr: r.expr })),
    ...(await alertRules()).map((r) => ({ where: r.alert, expr: r.expr })),
  ];
  let checked = 0;
  for (const { where, expr } of exprs) {
    for (const { name, matchers } of metricSelectors(expr)) {
      if (name.includes(":")) continue; // a recorded series: its rule selected the job
      const jobs = [...matchers.matchAll(/\bjob\s*(=~|!=|!~|=)\s*"([^"]*)"/g)].map((m) => `${m[1]}${m[2]}`);
      const want = name.startsWith("node_") ? ["=node"] : name === "up" ? ["=levelguard", "=node"] : [
        "=levelguard",
      ];
      assertEquals(jobs.length, 1, `${where}: ${name}${matchers} selects no job`);
      assert(want.includes(jobs[0]), `${where}: ${name}${matchers}`);
      checked++;
    }
  }
  assert(checked >= 30, `only ${checked} selectors`);
});

Deno.test("the deploy-time line of alerts.yml's header changes the runbook base and both jobs everywhere", async () => {
  const { runbookBase, sedLine } = await deployTimeValues();
  const substitutions = [...sedLine.matchAll(/-e 's\|([^|]+)\|([^|]+)\|g'/g)].map((m) => [m[1], m[2]]);
  assertEquals(substitutions.map(([from]) => from), [runbookBase, 'job="levelguard"', 'job="node"']);
  assert(sedLine.endsWith(" alerts.yml"), sedLine);
  const [newBase, newJob, newNode] = substitutions.map(([, to]) => to);
  assertMatch(newBase, /^https:\/\/\S+$/);
  const dir = await Deno.makeTempDir({ prefix: "levelguard-deploy-values-" });
  try {
    await Deno.copyFile(new URL("alerts.yml", PROMETHEUS_DIR), `${dir}/alerts.yml`);
    const sed = await new Deno.Command("sh", { args: ["-c", sedLine], cwd: dir, stderr: "piped" }).output();
    assert(sed.success, new TextDecoder().decode(sed.stderr));
    // The rules (comments aside) keep no old value and link to the new base.
    const doc = JSON.stringify(parseYaml(await Deno.readTextFile(`${dir}/alerts.yml`)));
    for (const [from] of substitutions) assert(!doc.includes(JSON.stringify(from).slice(1, -1)), from);
    const urls = [...doc.matchAll(/"runbook_url":"([^"]+)"/g)].map((m) => m[1]);
    assertEquals(urls.length, (await alertRules()).length);
    for (const url of urls) assert(url.startsWith(`${newBase}#`), url);
    // The unit tests, their expectations changed the same way, still pass on the changed rules.
    const job = (v: string) => /job="([^"]+)"/.exec(v)![1];
    let tests = await Deno.readTextFile(new URL("alerts_test.yml", PROMETHEUS_DIR));
    tests = tests.replaceAll(runbookBase, newBase);
    for (const [old, now] of [["levelguard", job(newJob)], ["node", job(newNode)]]) {
      tests = tests.replaceAll(`job="${old}"`, `job="${now}"`)
        .replace(new RegExp(`job: ${old}$`, "gm"), `job: ${now}`)
        .replaceAll(`job "${old}"`, `job "${now}"`);
    }
    await Deno.writeTextFile(`${dir}/alerts_test.yml`, tests);
    if (!noPromtool) {
      assertMatch(await promtool(["test", "rules", "alerts_test.yml"], new URL(`file://${dir}/`)), /SUCCESS/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("each latency quantile is computed once, by a recording rule, and the alerts and panels read it", async () => {
  const recording = await recordingRules();
  const recorded = new Set(recording.map((r) => r.record));
  for (const rule of recording) {
    // level:metric:operations
    assertMatch(rule.record, /^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/);
    assert(!rule.expr.includes("$"), rule.record);
    // The raw request-duration buckets are read once, without the SSE stream.
    for (const s of metricSelectors(rule.expr)) {
      if (s.name === "levelguard_http_request_duration_seconds_bucket") {
        assertMatch(s.matchers, /route!="\/admin\/health\/events"/, rule.record);
      }
    }
  }
  assertEquals(
    recording.filter((r) => r.expr.includes("histogram_quantile")).map((r) => r.record),
    [
      "job:levelguard_http_request_duration_seconds:p95_5m",
      "job_route:levelguard_http_request_duration_seconds:p50_5m",
      "job_route:levelguard_http_request_duration_seconds:p95_5m",
      "job_route:levelguard_http_request_duration_seconds:p99_5m",
    ],
  );
  const rules = await alertRules();
  for (const rule of rules) assert(!rule.expr.includes("histogram_quantile"), rule.alert);
  for (const rule of rules.filter((r) => r.alert === "LevelguardApiLatencyHigh")) {
    assertEquals(metricNames(rule.expr), ["job:levelguard_http_request_duration_seconds:p95_5m"]);
  }
  for (const rule of rules.filter((r) => r.alert === "LevelguardApiErrorRate")) {
    assertEquals(metricNames(rule.expr), ["job:levelguard_http_requests_5xx:ratio_rate5m"]);
  }
  const queries = await dashboardQueries();
  for (const q of queries) {
    const names = metricNames(q.expr);
    assert(!names.includes("levelguard_http_request_duration_seconds_bucket"), `${q.panel}: ${q.expr}`);
    // A recorded series a panel reads is one alerts.yml records (else the panel stays empty).
    for (const name of names.filter((n) => n.includes(":"))) {
      assert(recorded.has(name), `${q.panel}: ${name}`);
    }
  }
  const latency = queries.filter((q) => q.panel.startsWith("Latency")).flatMap((q) => metricNames(q.expr));
  assertEquals(latency.sort(), [
    "job:levelguard_http_request_duration_seconds:p95_5m",
    "job_route:levelguard_http_request_duration_seconds:p50_5m",
    "job_route:levelguard_http_request_duration_seconds:p95_5m",
    "job_route:levelguard_http_request_duration_seconds:p99_5m",
  ]);
});

Deno.test("LevelguardMemoryHigh divides by the unit's MemoryMax; the Memory panel draws the same limit", async () => {
  const unit = await Deno.readTextFile(UNIT);
  const m = /^MemoryMax=(\d+)([KMGT]?)$/m.exec(unit);
  assert(m, "the unit sets no MemoryMax");
  const bytes = Number(m[1]) * 1024 ** " KMGT".indexOf(m[2] || " ");
  const rules = (await alertRules()).filter((r) => r.alert === "LevelguardMemoryHigh");
  assertEquals(rules.length, 2);
  for (const rule of rules) {
    assertMatch(rule.expr, new RegExp(`^process_resident_memory_bytes\\{[^}]*\\} / ${bytes} > 0\\.\\d+$`));
    assert(
      rule.annotations.description.includes(`MemoryMax (${bytes / 2 ** 30} GiB)`),
      rule.annotations.description,
    );
  }
  const memory = (await dashboard()).panels.find((p: { title: string }) => p.title === "Memory");
  const steps = memory.fieldConfig.defaults.thresholds.steps.map((s: { value: number | null }) => s.value);
  assertEquals(steps, [null, bytes * (await thresholdsOf("LevelguardMemoryHigh"))[0], bytes]);
});

/** A Grafana panel as the tests read it. */
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: unknown;
  targets?: { expr?: string }[];
  panels?: Panel[];
  collapsed?: boolean;
  fieldConfig?: { defaults: { thresholds: { steps: { value: number | null }[] } } };
}

Deno.test("the Grafana dashboard: rows, a query on the templated data source in every panel, job and instance in every selector", async () => {
  const dash = await dashboard();
  assertEquals(dash.uid, "levelguard");
  assert(dash.schemaVersion >= 36, `schemaVersion ${dash.schemaVersion}`);
  const variables = new Map<string, Record<string, unknown>>(
    dash.templating.list.map((v: Record<string, unknown>) => [v.name, v]),
  );
  assertEquals([...variables.keys()], ["datasource", "job", "instance"]);
  assertEquals([variables.get("datasource")?.type, variables.get("datasource")?.query], [
    "datasource",
    "prometheus",
  ]);
  assertEquals(variables.get("job")?.type, "query");
  assertEquals(variables.get("job")?.definition, "label_values(levelguard_build_info, job)");
  assertEquals(variables.get("instance")?.type, "query");
  assertEquals(
    variables.get("instance")?.definition,
    'label_values(levelguard_build_info{job=~"$job"}, instance)',
  );

  const panels: Panel[] = dash.panels;
  const rows = panels.filter((p) => p.type === "row");
  assertEquals(rows.map((r) => r.title), ["Integrity", "API", "Database", "Process", "Usage and rollout"]);
  const ids = new Set<number>();
  const cells = new Set<string>();
  let row: Panel | undefined;
  for (const panel of panels) {
    assert(typeof panel.title === "string" && panel.title.trim(), `panel ${panel.id} has no title`);
    assert(!ids.has(panel.id), `duplicate panel id ${panel.id}`);
    ids.add(panel.id);
    // No two panels share a grid cell; each panel lies under its row, inside the 24 columns.
    const { x, y, w, h } = panel.gridPos;
    assert(x >= 0 && x + w <= 24, `${panel.title}: outside the grid`);
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        assert(!cells.has(`${i},${j}`), `${panel.title} overlaps another panel at ${i},${j}`);
        cells.add(`${i},${j}`);
      }
    }
    if (panel.type === "row") {
      assertEquals([panel.collapsed, panel.panels, x, w, h], [false, [], 0, 24, 1], panel.title);
      row = panel;
      continue;
    }
    assert(row && y > row.gridPos.y, `${panel.title} is above every row`);
    assertEquals(panel.datasource, { type: "prometheus", uid: "${datasource}" }, panel.title);
    const exprs = (panel.targets ?? []).map((t) => t.expr).filter((e): e is string => !!e);
    assert(exprs.length >= 1, `${panel.title}: no query`);
    for (const expr of exprs) {
      for (const { name, matchers } of metricSelectors(expr)) {
        // A recorded series is per job, all instances together; a scraped one is filtered by both.
        assert(matchers.includes('job=~"$job"'), `${panel.title}: ${name}${matchers}`);
        assertEquals(
          matchers.includes('instance=~"$instance"'),
          !name.includes(":"),
          `${panel.title}: ${name}`,
        );
      }
    }
  }
  const byTitle = (title: string) => panels.find((p) => p.title === title)!;
  const steps = (title: string) => byTitle(title).fieldConfig!.defaults.thresholds.steps.map((s) => s.value);
  assertEquals(byTitle("Consistency rate").type, "gauge");
  assertEquals(byTitle("Consistency rate").fieldConfig!.defaults.thresholds.steps, [
    { color: "red", value: null },
    { color: "yellow", value: 0.95 },
    { color: "green", value: 0.99 },
  ] as never);
  // The panels that show what an alert reads draw its thresholds.
  assertEquals(steps("Latency p95, all routes"), [null, ...await thresholdsOf("LevelguardApiLatencyHigh")]);
  assertEquals(steps("5xx error rate"), [null, ...await thresholdsOf("LevelguardApiErrorRate")]);
});

Deno.test("the Grafana dashboard imports through grafana.com's dialog: one Prometheus input, the panels it needs", async () => {
  const text = await Deno.readTextFile(DASHBOARD);
  const dash = JSON.parse(text);
  assertEquals(dash.__inputs, [{
    name: "DS_PROMETHEUS",
    label: "Prometheus",
    description: dash.__inputs[0].description,
    type: "datasource",
    pluginId: "prometheus",
    pluginName: "Prometheus",
  }]);
  // The import dialog replaces ${DS_PROMETHEUS} with the chosen data source: only the variable's
  // default names it, so the panels keep following the variable (and provisioning, which has no
  // dialog, falls back to the default Prometheus data source).
  const references = [...text.matchAll(/\$\{(DS_[A-Z_]+)\}/g)].map((m) => m[1]);
  assertEquals(references, ["DS_PROMETHEUS", "DS_PROMETHEUS"]);
  const datasource = dash.templating.list.find((v: { name: string }) => v.name === "datasource");
  assertEquals(datasource.current.value, "${DS_PROMETHEUS}");
  const requires = dash.__requires as { type: string; id: string }[];
  assert(requires.some((r) => r.type === "grafana" && r.id === "grafana"));
  assert(requires.some((r) => r.type === "datasource" && r.id === "prometheus"));
  const types = new Set((dash.panels as Panel[]).map((p) => p.type).filter((t) => t !== "row"));
  assertEquals(requires.filter((r) => r.type === "panel").map((r) => r.id).sort(), [...types].sort());
});

Deno.test("the Grafana provisioning files name a Prometheus data source and the dashboards folder", async () => {
  const read = async (path: string) =>
    parseYaml(await Deno.readTextFile(new URL(path, ROOT))) as Record<string, YamlValue>;
  const ds = (await read("ops/grafana/provisioning/datasources/prometheus.yml")).datasources as Record<
    string,
    YamlValue
  >[];
  assertEquals([ds[0].type, ds[0].uid, ds[0].url], ["prometheus", "prometheus", "http://127.0.0.1:9090"]);
  assertEquals(ds[0].isDefault, true, "the dashboard's data source variable falls back to the default");
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
  assertEquals(metricNames(exprOf("LevelguardApiErrorRate")), [
    "job:levelguard_http_requests_5xx:ratio_rate5m",
  ]);
  assertEquals(metricNames(exprOf("LevelguardSchedulerFailures")), ["levelguard_scheduler_runs_total"]);
  assertEquals(metricNames(exprOf("LevelguardNotificationsFailing")), ["levelguard_notifications_total"]);
  assertEquals(metricNames(exprOf("LevelguardNoSuccessfulCheck")), [
    "levelguard_seconds_since_last_successful_check",
    "process_start_time_seconds",
  ]);
  assertEquals(metricNames(exprOf("LevelguardDiskUsage")), [
    "node_filesystem_avail_bytes",
    "node_filesystem_readonly",
    "node_filesystem_size_bytes",
  ]);
  assertEquals(metricNames(exprOf("LevelguardDown")), ["up"]);
  assertEquals(metricNames(exprOf("LevelguardTargetMissing")), ["up"]);
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

Deno.test("metricSelectors: each name with its matchers, strings with braces, ranges and grouping lists skipped", () => {
  assertEquals(
    metricSelectors(
      'sum by (job) (rate(x{a="b}{", c=~"$job"}[5m])) / on (job) group_left(le) y\n' +
        '  + z {} and label_replace(w, "a", "$1", "b", "(.*)") # v{job="no"}\n' +
        "  or predict_linear(n{job=\"node\"}[6h], 4 * 3600) < 0 and j:k:l{job=~'x'} > bool 1e3",
    ),
    [
      { name: "x", matchers: '{a="b}{", c=~"$job"}' },
      { name: "y", matchers: "" },
      { name: "z", matchers: "{}" },
      { name: "w", matchers: "" },
      { name: "n", matchers: '{job="node"}' },
      { name: "j:k:l", matchers: "{job=~'x'}" },
    ],
  );
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

Deno.test("metricsUsedByOps: recorded series count as what they read; node_exporter's and Prometheus's own left out", async () => {
  const used = await metricsUsedByOps();
  const names = [...used.keys()];
  assertEquals(names, [...names].sort());
  for (const name of names) {
    // No recorded name is left: each stands for the scraped metrics its rule reads.
    assertMatch(name, /^(levelguard_|process_|nodejs_)/);
    assert(!/_bucket$/.test(name), name);
  }
  assertEquals(used.get("levelguard_consistency_rate"), [
    "alerts.yml: LevelguardConsistencyLow",
    "levelguard.json: Consistency rate",
    "levelguard.json: Consistency rate history",
  ]);
  assertEquals(used.get("levelguard_check_duration_seconds"), ["levelguard.json: Check duration by trigger"]);
  // Through the recording rules: the alert and both latency panels.
  const latency = used.get("levelguard_http_request_duration_seconds")!;
  for (
    const place of [
      "alerts.yml: job_route_le:levelguard_http_request_duration_seconds_bucket:rate5m",
      "alerts.yml: LevelguardApiLatencyHigh",
      "levelguard.json: Latency p95, all routes",
      "levelguard.json: Latency p50 / p95 / p99 by route",
    ]
  ) assert(latency.includes(place), `${place} not in ${latency.join(", ")}`);
  assert(used.get("levelguard_http_requests_total")!.includes("levelguard.json: 5xx error rate"));
  assertEquals(used.get("process_start_time_seconds"), ["alerts.yml: LevelguardNoSuccessfulCheck"]);
  assertEquals(used.get("process_resident_memory_bytes"), [
    "alerts.yml: LevelguardMemoryHigh",
    "levelguard.json: Memory",
  ]);
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

/**
 * Load scenario 3: health dashboard load.
 *
 * The plan: 100 admins ramp up at 20 per second and the run lasts 10 minutes
 * (the ramp included). Each logs in once, then repeats: one task, then a wait
 * of 30–60 s. Tasks, weighted 5 : 3 : 2 : 1 : 2:
 *   - GET /api/v1/health/status
 *   - GET /api/v1/health/metrics?window=24h
 *   - GET /api/v1/health/violations?limit=50
 *   - POST /api/v1/health/check-now (no body)
 *   - the dashboard page: GET /admin/health, then the live panel's htmx
 *     refresh (GET /admin/health?seen=…&window=24h, HX-Target: live), as an
 *     open page sends it; the admin signs in through the /admin/login form
 *     (CSRF token, cookie session) once, on its first dashboard task. The
 *     plan names the page without a weight; 2 is ours.
 * Pass: median under 50 ms, a check under 15 s at 10,000 students, no
 * failures (the SPEC's "0 errors"; the plan says under 0.1 %); the page
 * p95 under 20 ms and the partial p95 under 10 ms (the SPEC's; the plan
 * says "loads").
 *
 * Environment (defaults are the plan's):
 *   BASE_URL               http://localhost:8000
 *   ADMIN_EMAIL            admin@staging.example.com
 *   ADMIN_PASSWORD         staging_password
 *   VUS                    100      admins
 *   RAMP_RATE              20       admins started per second
 *   DURATION               10m      the whole run, ramp included
 *   STUDENTS               10000    students in the database (the report's context; the plan's size)
 *   WAIT_MIN, WAIT_MAX     30, 60   seconds between an admin's tasks
 *   WEIGHTS                5:3:2:1:2  status : metrics : violations : check-now : dashboard page (0: none)
 *   MIN_OFFERED_SHARE      0.9      throughput target = this × the offered rate
 *   LOGIN_RETRIES          0        0: sign in once, never retry (the plan's client); N: wait out a 503 N times
 *   LATENCY_TARGET_FACTOR  1        multiplies every latency target (≠ 1 caps the verdict at CONDITIONAL)
 *   ENVIRONMENT            staging  the report's "Environment"
 *   REPORT_DIR             reports  where handleSummary writes the report (must exist)
 *
 * The server must not rate-limit the load generator (RATE_LIMIT_EXEMPT or RATE_LIMIT_PER_MINUTE=0), and
 * the admin must be inside the dashboard's rollout (the SPEC's canary: 100 % on a fresh install).
 */
import http from "k6/http";
import { check, sleep } from "k6";
import {
  bearer,
  bodyJson,
  commonConfig,
  countRequestWithoutLogin,
  dashboardSignIn,
  dropToken,
  envInt,
  envNumber,
  envSeconds,
  envWeights,
  failureTarget,
  formatCount,
  formatRate,
  formatSeconds,
  hasDashboardSession,
  latencyTarget,
  loginTargets,
  metricValue,
  observe,
  offeredRate,
  pickWeighted,
  rampingVus,
  retryingLogins,
  secondsLeft,
  SUMMARY_TREND_STATS,
  summaryHandler,
  target,
  think,
  thresholdsOf,
  userToken,
} from "./lib/common.js";

/** The plan's parameters. */
const PLAN = { vus: 100, rampRate: 20, durationS: 600, students: 10000, waitMin: 30, waitMax: 60 };

const common = commonConfig();
const cfg = {
  vus: envInt("VUS", PLAN.vus, 1),
  rampRate: envNumber("RAMP_RATE", PLAN.rampRate, 0.001),
  durationS: envSeconds("DURATION", "10m"),
  students: envInt("STUDENTS", PLAN.students, 1),
  waitMin: envNumber("WAIT_MIN", PLAN.waitMin, 0),
  waitMax: envNumber("WAIT_MAX", PLAN.waitMax, 0),
  weights: envWeights("WEIGHTS", [5, 3, 2, 1, 2]),
  offeredShare: envNumber("MIN_OFFERED_SHARE", 0.9, 0),
};
if (cfg.waitMax < cfg.waitMin) throw new Error("WAIT_MAX must be at least WAIT_MIN");

// 100 admins waiting 30–60 s offer ~2 requests/s, nowhere near the plan's 200 requests/s:
// the target is MIN_OFFERED_SHARE × what they offer (the service keeps up), and the report shows both.
const OFFERED = offeredRate(cfg);
const THROUGHPUT_TARGET = Math.round(cfg.offeredShare * OFFERED * 100) / 100;

const STATUS = "health_status";
const METRICS = "health_metrics";
const VIOLATIONS = "health_violations";
const CHECK = "check_now";
const SIGN_IN = "dashboard_login";
const PAGE = "dashboard_page";
const PARTIAL = "dashboard_partial";
const ENDPOINTS = ["login", STATUS, METRICS, VIOLATIONS, CHECK, SIGN_IN, PAGE, PARTIAL];

const f = common.latencyFactor;
const TARGETS = [
  latencyTarget(STATUS, "med", 50, f, "Health status median", "plan: < 50 ms, cached"),
  latencyTarget(METRICS, "med", 50, f, "Health metrics median", "plan: median < 50 ms"),
  latencyTarget(VIOLATIONS, "med", 50, f, "Violations list median", "plan: median < 50 ms"),
  latencyTarget(CHECK, "p(95)", 10000, f, "Check-now p95", "plan: manual check < 10 s"),
  latencyTarget(CHECK, "max", 15000, f, "Check-now, slowest", "plan: check < 15 s at 10,000 students"),
  latencyTarget(PAGE, "p(95)", 20, f, "Dashboard page p95", "ours: < 20 ms at 10K students; plan: loads"),
  latencyTarget(PARTIAL, "p(95)", 10, f, "Dashboard partial p95", "ours: < 10 ms at 10K students"),
  failureTarget(
    null,
    0,
    "Failure rate, all requests",
    "ours: 0 errors; plan: < 0.1 %",
  ),
  target({
    metric: "checks",
    expr: "rate==1",
    label: "Checks on status and body",
    target: "100 %",
    unit: "%",
    kind: "correctness",
    why: "ours: 0 errors; plan: < 0.1 % failures",
  }),
  ...loginTargets(),
  target({
    metric: "rate_limited_unexpected",
    expr: "count==0",
    label: "429 responses",
    target: "0",
    unit: "count",
    kind: "correctness",
    why: "the load generator must be exempt",
    action: "start the server with RATE_LIMIT_EXEMPT=<load generator>/32 or RATE_LIMIT_PER_MINUTE=0",
  }),
  target({
    metric: "http_reqs{name:" + STATUS + "}",
    expr: "count>0",
    label: "Status reads sent",
    target: "> 0",
    unit: "count",
    kind: "correctness",
    action: "the scenario did not run: check BASE_URL and the admin credentials",
  }),
  target({
    metric: "http_reqs",
    expr: "rate>=" + THROUGHPUT_TARGET,
    label: "Throughput",
    target: "≥ " + formatRate(THROUGHPUT_TARGET),
    unit: "req/s",
    kind: "performance",
    why: "plan: 200 req/s, out of reach: admins offer ≈ " + formatRate(OFFERED) + ", so " + cfg.offeredShare +
      " × offered",
    action: "the service fell behind a light load: look at check-now durations and the pool",
  }),
];

export const options = {
  scenarios: {
    health_dashboard: rampingVus({
      vus: cfg.vus,
      rampRate: cfg.rampRate,
      durationS: cfg.durationS,
      // A check-now in flight at the end may take up to the 15 s target.
      gracefulStopS: 30,
    }),
  },
  thresholds: thresholdsOf(TARGETS, ENDPOINTS),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const API = common.baseUrl + "/api/v1/health";
const STATUSES = ["healthy", "degraded", "critical", "unknown"];

/** @param {string} token */
function status(token) {
  const res = observe(http.get(API + "/status", { headers: bearer(token), tags: { name: STATUS } }));
  const json = bodyJson(res);
  check(res, {
    "health status: 200 with a status": function (r) {
      return r.status === 200 && json && STATUSES.indexOf(json.status) >= 0;
    },
  }, { name: STATUS });
  return res;
}

/** @param {string} token */
function metrics(token) {
  const res = observe(
    http.get(API + "/metrics?window=24h", { headers: bearer(token), tags: { name: METRICS } }),
  );
  const json = bodyJson(res);
  check(res, {
    "health metrics: 200 with a history": function (r) {
      return r.status === 200 && json && json.history && Array.isArray(json.history.points);
    },
  }, { name: METRICS });
  return res;
}

/** @param {string} token */
function violations(token) {
  const res = observe(
    http.get(API + "/violations?limit=50", { headers: bearer(token), tags: { name: VIOLATIONS } }),
  );
  const json = bodyJson(res);
  check(res, {
    "violations: 200 with at most 50 items": function (r) {
      return r.status === 200 && json && Array.isArray(json.items) && json.items.length <= 50;
    },
  }, { name: VIOLATIONS });
  return res;
}

/** @param {string} token */
function checkNow(token) {
  const res = observe(http.post(API + "/check-now", null, { headers: bearer(token), tags: { name: CHECK } }));
  const json = bodyJson(res);
  check(res, {
    "check-now: 200 with the finished check": function (r) {
      return r.status === 200 && json && typeof json.violation_count === "number";
    },
  }, { name: CHECK });
  return res;
}

// This admin's dashboard cookies (the CSRF cookie, then the session), kept across iterations.
const jar = new http.CookieJar();
let signedIn = false;
// The plan's client signs in once: after a failed sign-in its page tasks are not run (and counted).
let signInFailed = false;

/**
 * The dashboard page as an admin's browser loads it, then the live panel's refresh. The page is
 * fetched without following redirects: a sign-in page instead of the dashboard is a failure.
 */
function dashboardPage() {
  if (!signedIn) {
    if (signInFailed && !retryingLogins()) {
      countRequestWithoutLogin();
      return null;
    }
    signedIn = dashboardSignIn(common.baseUrl, common.adminEmail, common.adminPassword, jar);
    signInFailed = !signedIn;
    if (!signedIn) return null;
  }
  const page = observe(http.get(common.baseUrl + "/admin/health", {
    jar: jar,
    redirects: 0,
    tags: { name: PAGE },
    responseCallback: http.expectedStatuses(200),
  }));
  const html = typeof page.body === "string" ? page.body : "";
  const seen = /name="seen"\s+value="(\d+)"/.exec(html);
  check(page, {
    // The health page itself: not the sign-in page, nor the one admins outside the rollout get.
    "dashboard page: 200 with the live panel": function (r) {
      return r.status === 200 && html.indexOf('id="live"') >= 0 && seen !== null;
    },
  }, { name: PAGE });
  if (page.status !== 200 || seen === null) {
    signedIn = page.status === 200 && hasDashboardSession(jar, common.baseUrl);
    return page;
  }
  const part = observe(http.get(common.baseUrl + "/admin/health?seen=" + seen[1] + "&window=24h", {
    jar: jar,
    redirects: 0,
    headers: {
      "HX-Request": "true",
      "HX-Target": "live",
      "HX-Current-URL": common.baseUrl + "/admin/health",
    },
    tags: { name: PARTIAL },
    responseCallback: http.expectedStatuses(200),
  }));
  const fragment = typeof part.body === "string" ? part.body : "";
  check(part, {
    "dashboard partial: 200 with the live panel alone": function (r) {
      return r.status === 200 && fragment.indexOf('name="seen"') >= 0 && fragment.indexOf("<html") < 0;
    },
  }, { name: PARTIAL });
  if (part.status === 401) signedIn = false;
  return part;
}

const TASKS = [status, metrics, violations, checkNow, dashboardPage];

export default function () {
  if (secondsLeft(cfg.durationS) <= 0) {
    sleep(0.2);
    return;
  }
  const token = userToken(common.baseUrl, common.adminEmail, common.adminPassword);
  if (token === null) {
    think(cfg.waitMin, cfg.waitMax, cfg.durationS);
    return;
  }
  const task = pickWeighted(TASKS, cfg.weights);
  const res = task(token);
  // The API's 401 means the token; the dashboard handles its own session.
  if (res !== null && res.status === 401 && task !== dashboardPage) dropToken();
  think(cfg.waitMin, cfg.waitMax, cfg.durationS);
}

const REDUCED = [].concat(
  cfg.vus < PLAN.vus ? ["VUS " + formatCount(cfg.vus) + " (plan 100)"] : [],
  cfg.durationS < PLAN.durationS ? ["DURATION " + formatSeconds(cfg.durationS) + " (plan 10 min)"] : [],
  cfg.rampRate !== PLAN.rampRate ? ["RAMP_RATE " + cfg.rampRate + "/s (plan 20/s)"] : [],
  cfg.waitMin !== PLAN.waitMin || cfg.waitMax !== PLAN.waitMax
    ? ["waits " + cfg.waitMin + "–" + cfg.waitMax + " s (plan 30–60 s)"]
    : [],
  cfg.students < PLAN.students ? ["STUDENTS " + formatCount(cfg.students) + " (plan 10,000)"] : [],
  f !== 1 ? ["latency targets relaxed ×" + f] : [],
);

export const handleSummary = summaryHandler({
  scenario: "health_dashboard",
  title: "Scenario 3: Health dashboard load",
  users: formatCount(cfg.vus),
  spawnRate: cfg.rampRate + " users/s",
  host: common.baseUrl,
  environment: common.environment,
  reportDir: common.reportDir,
  parameters: [
    ["admins (VUS)", formatCount(cfg.vus), "100"],
    ["spawn rate (RAMP_RATE)", cfg.rampRate + "/s", "20/s"],
    ["duration (DURATION)", formatSeconds(cfg.durationS), "10 min"],
    ["students in the database (STUDENTS)", formatCount(cfg.students), "10,000"],
    ["wait between tasks", cfg.waitMin + "–" + cfg.waitMax + " s", "30–60 s"],
    [
      "weights status : metrics : violations : check-now : dashboard page",
      cfg.weights.join(" : "),
      "5 : 3 : 2 : 1 (the page: no weight)",
    ],
  ],
  reduced: REDUCED,
  endpoints: ENDPOINTS,
  targets: TARGETS,
  figures: function (data, seconds) {
    const achieved = seconds > 0 ? (metricValue(data, "http_reqs", "count") || 0) / seconds : 0;
    return [
      "- Offered load: ≈ " + formatRate(OFFERED) + " (" + formatCount(cfg.vus) + " admins ÷ " +
      (cfg.waitMin + cfg.waitMax) / 2 + " s mean wait, ramp included); achieved: " + formatRate(achieved) +
      "; the plan's 200 req/s is out of this scenario's reach",
      "- Dashboard page (/admin/health, signed in through the form): " +
      formatCount(metricValue(data, "http_reqs{name:" + PAGE + "}", "count") || 0) + " pages and " +
      formatCount(metricValue(data, "http_reqs{name:" + PARTIAL + "}", "count") || 0) +
      " live-panel refreshes" + (cfg.weights[4] === 0 ? " (weight 0: not measured)" : ""),
    ];
  },
});

/**
 * Load scenario 1: progress update storm.
 *
 * The plan: 1,000 users ramp up at 50 per second and the run lasts 10 minutes
 * (the ramp included). Each user logs in once (POST /api/v1/auth/login; 1,000
 * logins within 20 s is the plan's login storm), then repeats: one task, then
 * a wait of 1–3 s. Tasks, weighted 10 : 3 : 1:
 *   - award XP: POST /api/v1/specializations/progress/update, a random
 *     student 1..STUDENTS, a random specialization, XP 10..200;
 *   - read the health status: GET /api/v1/health/status;
 *   - run a check: POST /api/v1/health/check-now (no body).
 * Pass: more than 500 requests/s where the offered load allows it, median
 * under 100 ms (we take 50 ms, see loadtest/README.md), p95 under 500 ms,
 * no failures (the SPEC's "0 errors"; the plan says under 1 %). Users log in
 * as the plan's clients do, once and never retrying: a failed login is a
 * failure, and so is every task its user then cannot run (LOGIN_RETRIES
 * makes them retry instead, see lib/common.js).
 *
 * Environment (defaults are the plan's):
 *   BASE_URL               http://localhost:8000
 *   ADMIN_EMAIL            admin@staging.example.com (every user logs in as this admin: the tasks need ADMIN)
 *   ADMIN_PASSWORD         staging_password
 *   VUS                    1000     users
 *   RAMP_RATE              50       users started per second
 *   DURATION               10m      the whole run, ramp included (90s, 1m30s, 600 ...)
 *   STUDENTS               10000    awards go to students 1..STUDENTS (seeded ids)
 *   WAIT_MIN, WAIT_MAX     1, 3     seconds between a user's tasks
 *   XP_MIN, XP_MAX         10, 200  xp_change of an award
 *   WEIGHTS                10:3:1   update : status : check-now
 *   MIN_OFFERED_SHARE      0.9      throughput target = min(500 req/s, this × the offered rate)
 *   LOGIN_RETRIES          0        0: log in once, never retry (the plan's client); N: wait out a 503 N times
 *   LATENCY_TARGET_FACTOR  1        multiplies every latency target (≠ 1 caps the verdict at CONDITIONAL)
 *   ENVIRONMENT            staging  the report's "Environment"
 *   REPORT_DIR             reports  where handleSummary writes <scenario>-<UTC stamp>.md and .json (must exist)
 *
 * The server must not rate-limit the load generator: RATE_LIMIT_EXEMPT=<its address>/32 or
 * RATE_LIMIT_PER_MINUTE=0. Run from the repository's root (reports/ is committed, k6 does not create it):
 * k6 run loadtest/progress_update.js
 * (or `deno task loadtest progress_update`, which starts a seeded server when BASE_URL is unset).
 */
import http from "k6/http";
import { check, sleep } from "k6";
import {
  bearer,
  bodyJson,
  commonConfig,
  dropToken,
  envInt,
  envNumber,
  envSeconds,
  envWeights,
  failureTarget,
  formatCount,
  formatRate,
  formatSeconds,
  jsonHeaders,
  latencyTarget,
  loginTargets,
  metricValue,
  observe,
  offeredRate,
  pickWeighted,
  rampingVus,
  randInt,
  secondsLeft,
  SPECIALIZATIONS,
  SUMMARY_TREND_STATS,
  summaryHandler,
  target,
  think,
  thresholdsOf,
  userToken,
} from "./lib/common.js";

/** The plan's parameters. */
const PLAN = { vus: 1000, rampRate: 50, durationS: 600, students: 10000, waitMin: 1, waitMax: 3 };

const common = commonConfig();
const cfg = {
  vus: envInt("VUS", PLAN.vus, 1),
  rampRate: envNumber("RAMP_RATE", PLAN.rampRate, 0.001),
  durationS: envSeconds("DURATION", "10m"),
  students: envInt("STUDENTS", PLAN.students, 1),
  waitMin: envNumber("WAIT_MIN", PLAN.waitMin, 0),
  waitMax: envNumber("WAIT_MAX", PLAN.waitMax, 0),
  xpMin: envInt("XP_MIN", 10, 1),
  xpMax: envInt("XP_MAX", 200, 1),
  weights: envWeights("WEIGHTS", [10, 3, 1]),
  offeredShare: envNumber("MIN_OFFERED_SHARE", 0.9, 0),
};
if (cfg.waitMax < cfg.waitMin) throw new Error("WAIT_MAX must be at least WAIT_MIN");
if (cfg.xpMax < cfg.xpMin) throw new Error("XP_MAX must be at least XP_MIN");

// 1,000 users waiting 1–3 s (2 s on average) offer at most ~500 requests/s, less during the
// ramp (491.7/s at the plan's parameters): the plan's "> 500/s" is out of the scenario's reach,
// so the target is min(500, MIN_OFFERED_SHARE × what the users offer), and the report shows both.
const OFFERED = offeredRate(cfg);
const THROUGHPUT_TARGET = Math.round(Math.min(500, cfg.offeredShare * OFFERED) * 10) / 10;

const UPDATE = "progress_update";
const STATUS = "health_status";
const CHECK = "check_now";
const ENDPOINTS = ["login", UPDATE, STATUS, CHECK];

const f = common.latencyFactor;
const TARGETS = [
  latencyTarget(UPDATE, "med", 50, f, "Progress update median", "plan: < 100 ms and < 50 ms; the stricter"),
  latencyTarget(UPDATE, "p(95)", 500, f, "Progress update p95", "plan"),
  latencyTarget(STATUS, "med", 50, f, "Health status median", "plan: < 50 ms, cached"),
  latencyTarget(STATUS, "p(95)", 500, f, "Health status p95", "plan"),
  latencyTarget(CHECK, "p(95)", 10000, f, "Check-now p95", "plan: manual check < 10 s"),
  failureTarget(null, 0, "Failure rate, all requests", "ours: 0 errors; plan: < 1 %"),
  failureTarget(UPDATE, 0, "Failure rate, progress updates", "ours: 0 errors; plan: < 1 %"),
  target({
    metric: "checks",
    expr: "rate==1",
    label: "Checks on status and body",
    target: "100 %",
    unit: "%",
    kind: "correctness",
    why: "ours: 0 errors; plan: < 1 % failures",
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
    metric: "http_reqs{name:" + UPDATE + "}",
    expr: "count>0",
    label: "Progress updates sent",
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
    why: "plan: > 500 req/s; users offer ≈ " + formatRate(OFFERED) + ", so min(500, " + cfg.offeredShare +
      " × offered)",
    action: "the service fell behind the offered load: compare latency during and after the ramp",
  }),
];

export const options = {
  scenarios: {
    progress_update: rampingVus({
      vus: cfg.vus,
      rampRate: cfg.rampRate,
      durationS: cfg.durationS,
      // A check-now may take seconds; let a request in flight at the end finish.
      gracefulStopS: 30,
    }),
  },
  thresholds: thresholdsOf(TARGETS, ENDPOINTS),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const URL_UPDATE = common.baseUrl + "/api/v1/specializations/progress/update";
const URL_STATUS = common.baseUrl + "/api/v1/health/status";
const URL_CHECK = common.baseUrl + "/api/v1/health/check-now";
const STATUSES = ["healthy", "degraded", "critical", "unknown"];

/** @param {string} token */
function award(token) {
  const body = {
    student_id: randInt(1, cfg.students),
    specialization_id: SPECIALIZATIONS[randInt(0, SPECIALIZATIONS.length - 1)],
    xp_change: randInt(cfg.xpMin, cfg.xpMax),
  };
  const res = observe(http.post(URL_UPDATE, JSON.stringify(body), {
    headers: jsonHeaders(token),
    tags: { name: UPDATE },
  }));
  const json = bodyJson(res);
  check(res, {
    "progress update: 200 with the new, coupled state": function (r) {
      return r.status === 200 && json && json.student_id === body.student_id &&
        typeof json.event_id === "number" && typeof json.xp_applied === "number" && json.progress &&
        json.license && json.progress.current_level === json.license.current_level;
    },
  }, { name: UPDATE });
  return res;
}

/** @param {string} token */
function status(token) {
  const res = observe(http.get(URL_STATUS, { headers: bearer(token), tags: { name: STATUS } }));
  const json = bodyJson(res);
  check(res, {
    "health status: 200 with a status": function (r) {
      return r.status === 200 && json && STATUSES.indexOf(json.status) >= 0;
    },
  }, { name: STATUS });
  return res;
}

/** @param {string} token */
function checkNow(token) {
  const res = observe(http.post(URL_CHECK, null, { headers: bearer(token), tags: { name: CHECK } }));
  const json = bodyJson(res);
  check(res, {
    "check-now: 200 with the finished check": function (r) {
      return r.status === 200 && json && typeof json.violation_count === "number" &&
        json.status !== undefined;
    },
  }, { name: CHECK });
  return res;
}

const TASKS = [award, status, checkNow];

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
  const res = pickWeighted(TASKS, cfg.weights)(token);
  if (res.status === 401) dropToken();
  think(cfg.waitMin, cfg.waitMax, cfg.durationS);
}

/** @param {number} value @param {number} plan @param {string} text */
function differs(value, plan, text) {
  return value === plan ? [] : [text];
}

const REDUCED = [].concat(
  cfg.vus < PLAN.vus ? ["VUS " + formatCount(cfg.vus) + " (plan 1,000)"] : [],
  cfg.durationS < PLAN.durationS ? ["DURATION " + formatSeconds(cfg.durationS) + " (plan 10 min)"] : [],
  differs(cfg.rampRate, PLAN.rampRate, "RAMP_RATE " + cfg.rampRate + "/s (plan 50/s)"),
  cfg.waitMin !== PLAN.waitMin || cfg.waitMax !== PLAN.waitMax
    ? ["waits " + cfg.waitMin + "–" + cfg.waitMax + " s (plan 1–3 s)"]
    : [],
  cfg.students < PLAN.students ? ["STUDENTS " + formatCount(cfg.students) + " (plan 10,000)"] : [],
  f !== 1 ? ["latency targets relaxed ×" + f] : [],
);

export const handleSummary = summaryHandler({
  scenario: "progress_update",
  title: "Scenario 1: Progress update storm",
  users: formatCount(cfg.vus),
  spawnRate: cfg.rampRate + " users/s",
  host: common.baseUrl,
  environment: common.environment,
  reportDir: common.reportDir,
  parameters: [
    ["users (VUS)", formatCount(cfg.vus), "1,000"],
    ["spawn rate (RAMP_RATE)", cfg.rampRate + "/s", "50/s"],
    ["duration (DURATION)", formatSeconds(cfg.durationS), "10 min"],
    ["students (STUDENTS)", "1.." + formatCount(cfg.students), "1..10,000"],
    ["wait between tasks", cfg.waitMin + "–" + cfg.waitMax + " s", "1–3 s"],
    ["XP per award", cfg.xpMin + "–" + cfg.xpMax, "10–200"],
    ["weights update : status : check-now", cfg.weights.join(" : "), "10 : 3 : 1"],
  ],
  reduced: REDUCED,
  endpoints: ENDPOINTS,
  targets: TARGETS,
  figures: function (data, seconds) {
    const achieved = seconds > 0 ? (metricValue(data, "http_reqs", "count") || 0) / seconds : 0;
    return [
      "- Offered load: ≈ " + formatRate(OFFERED) + " (" + formatCount(cfg.vus) + " users ÷ " +
      (cfg.waitMin + cfg.waitMax) / 2 + " s mean wait, ramp included); achieved: " + formatRate(achieved) +
      "; throughput target: ≥ " + formatRate(THROUGHPUT_TARGET) +
      " (the plan's 500 req/s where offered allows)",
    ];
  },
});

/**
 * Load scenario 2: coupling enforcer stress.
 *
 * The plan: 500 users ramp up at 100 per second and the run lasts 5 minutes
 * (the ramp included). Each user logs in once, then repeats: award XP to a
 * random student 1..100 in PLAYER (XP 10..50), wait 0.1–0.5 s. Five users per
 * student: every award contends for the same rows, which is what the
 * coupling enforcer (one transaction, fixed lock order) must survive.
 * Pass: p95 under 200 ms, 0 failures, 0 desyncs; at the end one check-now
 * must report 0 violations, and the XP totals must account for every
 * acknowledged change.
 *
 * How the ledger is verified without a database connection. k6 cannot query
 * the database and the API has no endpoint that reads a student's XP, but
 * every 200 of an award carries `progress.total_xp` after the change. So
 * setup() awards 1 XP to each of the students (PLAYER) and keeps the totals
 * it gets back, and teardown() does the same after the run. The growth in
 * between (minus teardown's own award) must equal the sum of `xp_applied`
 * of every acknowledged (200) award the users made. k6 thresholds cannot
 * compare two metrics, so the users add each `xp_applied` to the counter
 * `xp_unaccounted` and teardown adds minus the growth: the target is
 * `count==0`. (Were a later k6 to refuse negative values, the counter would
 * stay positive and the target fail: loudly, not silently.) The other half
 * is the database's: the final check-now compares every `total_xp` with the
 * sum of its ledger rows (LEDGER_MISMATCH) and every progress row with its
 * license, so "0 violations" plus "0 unaccounted" means ledger = totals =
 * start + acknowledged changes. This needs the students to themselves while
 * it runs (no other writer on students 1..STUDENTS).
 *
 * Environment (defaults are the plan's):
 *   BASE_URL               http://localhost:8000
 *   ADMIN_EMAIL            admin@staging.example.com (users log in as this admin)
 *   ADMIN_PASSWORD         staging_password
 *   VUS                    500      users
 *   RAMP_RATE              100      users started per second
 *   DURATION               5m       the whole run, ramp included
 *   STUDENTS               100      awards go to students 1..STUDENTS (PLAYER)
 *   WAIT_MIN, WAIT_MAX     0.1, 0.5 seconds between a user's awards
 *   XP_MIN, XP_MAX         10, 50   xp_change of an award
 *   LOGIN_RETRIES          0        0: log in once, never retry (the plan's client); N: wait out a 503 N times
 *   LATENCY_TARGET_FACTOR  1        multiplies the latency target (≠ 1 caps the verdict at CONDITIONAL)
 *   ENVIRONMENT            staging  the report's "Environment"
 *   REPORT_DIR             reports  where handleSummary writes the report (must exist)
 *
 * The server must not rate-limit the load generator (RATE_LIMIT_EXEMPT or RATE_LIMIT_PER_MINUTE=0),
 * and the database must start without desyncs (seed with --desync-rate 0): setup() reports the
 * violations it finds before the run.
 */
import http from "k6/http";
import { check, sleep } from "k6";
import { Counter } from "k6/metrics";
import {
  bearer,
  bodyJson,
  commonConfig,
  dropToken,
  envInt,
  envNumber,
  envSeconds,
  failureTarget,
  formatCount,
  formatRate,
  formatSeconds,
  jsonHeaders,
  latencyTarget,
  login,
  loginTargets,
  metricValue,
  observe,
  offeredRate,
  rampingVus,
  randInt,
  secondsLeft,
  SUMMARY_TREND_STATS,
  summaryHandler,
  target,
  think,
  thresholdsOf,
  userToken,
} from "./lib/common.js";

/** The plan's parameters. */
const PLAN = { vus: 500, rampRate: 100, durationS: 300, students: 100, waitMin: 0.1, waitMax: 0.5 };

const common = commonConfig();
const cfg = {
  vus: envInt("VUS", PLAN.vus, 1),
  rampRate: envNumber("RAMP_RATE", PLAN.rampRate, 0.001),
  durationS: envSeconds("DURATION", "5m"),
  students: envInt("STUDENTS", PLAN.students, 1),
  waitMin: envNumber("WAIT_MIN", PLAN.waitMin, 0),
  waitMax: envNumber("WAIT_MAX", PLAN.waitMax, 0),
  xpMin: envInt("XP_MIN", 10, 1),
  xpMax: envInt("XP_MAX", 50, 1),
};
if (cfg.waitMax < cfg.waitMin) throw new Error("WAIT_MAX must be at least WAIT_MIN");
if (cfg.xpMax < cfg.xpMin) throw new Error("XP_MAX must be at least XP_MIN");

const OFFERED = offeredRate(cfg);

const xpAcknowledged = new Counter("xp_acknowledged");
const changesAcknowledged = new Counter("changes_acknowledged");
const xpGrowth = new Counter("xp_total_growth");
const xpUnaccounted = new Counter("xp_unaccounted");
const ledgerVerified = new Counter("ledger_verified");
const desyncs = new Counter("desyncs");
const ledgerMismatches = new Counter("ledger_mismatches");
const finalChecks = new Counter("final_checks");
const baselineViolations = new Counter("baseline_violations");
const desyncedResponses = new Counter("desynced_responses");

const UPDATE = "progress_update";
const PROBE = "ledger_probe";
const CHECK = "check_now";
const ENDPOINTS = ["login", UPDATE, PROBE, CHECK];

/**
 * @param {string} metric
 * @param {string} expr
 * @param {string} label
 * @param {string} text
 * @param {string} action
 */
function mustHold(metric, expr, label, text, action) {
  return target({
    metric: metric,
    expr: expr,
    label: label,
    target: text,
    unit: "count",
    kind: "correctness",
    action: action,
  });
}

const TARGETS = [
  latencyTarget(UPDATE, "p(95)", 200, common.latencyFactor, "Progress update p95", "plan"),
  failureTarget(
    null,
    0,
    "Failure rate, all requests",
    "plan: 0 failures, so no deadlock or lost update either",
  ),
  target({
    metric: "checks",
    expr: "rate==1",
    label: "Checks on status and body",
    target: "100 %",
    unit: "%",
    kind: "correctness",
    why: "plan: 0 failures",
  }),
  mustHold(
    "desyncs",
    "count==0",
    "Violations found by the final check",
    "0",
    "open GET /api/v1/health/violations; a desync under contention is a coupling bug",
  ),
  mustHold(
    "final_checks",
    "count>0",
    "Final check ran",
    "1",
    "teardown could not run check-now: look at its log lines",
  ),
  mustHold(
    "desynced_responses",
    "count==0",
    "Responses whose progress and license levels differ",
    "0",
    "a 200 reported a progress level its license did not match: a coupling bug",
  ),
  mustHold(
    "xp_unaccounted",
    "count==0",
    "Acknowledged XP minus total XP growth",
    "0",
    "total XP grew by something other than the acknowledged changes: lost or phantom awards",
  ),
  mustHold(
    "ledger_verified",
    "count>0",
    "XP totals read before and after",
    "1",
    "setup or teardown could not read the totals (see the ledger_probe check)",
  ),
  ...loginTargets(),
  mustHold(
    "rate_limited_unexpected",
    "count==0",
    "429 responses",
    "0",
    "start the server with RATE_LIMIT_EXEMPT=<load generator>/32 or RATE_LIMIT_PER_MINUTE=0",
  ),
  mustHold(
    "http_reqs{name:" + UPDATE + "}",
    "count>0",
    "Progress updates sent",
    "> 0",
    "the scenario did not run: check BASE_URL and the admin credentials",
  ),
];

export const options = {
  scenarios: {
    coupling_enforcer: rampingVus({
      vus: cfg.vus,
      rampRate: cfg.rampRate,
      durationS: cfg.durationS,
      gracefulStopS: 30,
    }),
  },
  // Teardown reads 100 totals and runs a full check.
  teardownTimeout: "5m",
  setupTimeout: "5m",
  thresholds: thresholdsOf(TARGETS, ENDPOINTS),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const URL_UPDATE = common.baseUrl + "/api/v1/specializations/progress/update";
const URL_CHECK = common.baseUrl + "/api/v1/health/check-now";

/**
 * Awards 1 XP to each student in PLAYER and returns, per student, the total before that award
 * (total_xp after it minus its xp_applied) and after it, or null when one of them failed.
 * @param {string} token
 * @returns {{ before: number[], after: number[] } | null}
 */
function readTotals(token) {
  /** @type {{ before: number[], after: number[] }} */
  const totals = { before: [], after: [] };
  for (let s = 1; s <= cfg.students; s++) {
    const res = observe(http.post(
      URL_UPDATE,
      JSON.stringify({ student_id: s, specialization_id: "PLAYER", xp_change: 1 }),
      { headers: jsonHeaders(token), tags: { name: PROBE } },
    ));
    const json = bodyJson(res);
    const ok = check(res, {
      "ledger probe: 200 with total_xp": function (r) {
        return r.status === 200 && json && json.progress && typeof json.progress.total_xp === "number" &&
          typeof json.xp_applied === "number";
      },
    }, { name: PROBE });
    if (!ok) {
      console.error(
        "ledger probe of student " + s + " failed: " + res.status + " " + String(res.body).slice(0, 200),
      );
      return null;
    }
    totals.before.push(json.progress.total_xp - json.xp_applied);
    totals.after.push(json.progress.total_xp);
  }
  return totals;
}

/**
 * One full check; null when it did not answer 200.
 * @param {string} token
 * @returns {any}
 */
function fullCheck(token) {
  const res = observe(
    http.post(URL_CHECK, null, { headers: bearer(token), tags: { name: CHECK }, timeout: "120s" }),
  );
  const json = bodyJson(res);
  const ok = check(res, {
    "check-now: 200 with the finished check": function (r) {
      return r.status === 200 && json && typeof json.violation_count === "number";
    },
  }, { name: CHECK });
  if (!ok) console.error("check-now failed: " + res.status + " " + String(res.body).slice(0, 300));
  return ok ? json : null;
}

export function setup() {
  const session = login(common.baseUrl, common.adminEmail, common.adminPassword);
  if (session === null) {
    console.error(
      "setup: the admin cannot log in (ADMIN_EMAIL, ADMIN_PASSWORD); the ledger cannot be verified",
    );
    return { before: null };
  }
  const baseline = fullCheck(session.token);
  if (baseline) {
    baselineViolations.add(baseline.violation_count);
    if (baseline.violation_count > 0) {
      console.warn(
        "setup: the database already has " + baseline.violation_count + " violations before the run " +
          JSON.stringify(baseline.counts_by_kind) + "; the final check will find them too",
      );
    }
  }
  const totals = readTotals(session.token);
  // The totals once setup's own awards are in: the users' awards start from here.
  return { start: totals ? totals.after : null };
}

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
  const body = {
    student_id: randInt(1, cfg.students),
    specialization_id: "PLAYER",
    xp_change: randInt(cfg.xpMin, cfg.xpMax),
  };
  const res = observe(
    http.post(URL_UPDATE, JSON.stringify(body), { headers: jsonHeaders(token), tags: { name: UPDATE } }),
  );
  const json = bodyJson(res);
  const acknowledged = res.status === 200 && json && typeof json.xp_applied === "number";
  if (acknowledged) {
    xpAcknowledged.add(json.xp_applied);
    xpUnaccounted.add(json.xp_applied);
    changesAcknowledged.add(1);
    if (!json.progress || !json.license || json.progress.current_level !== json.license.current_level) {
      desyncedResponses.add(1);
    }
  }
  check(res, {
    "progress update: 200 with the new, coupled state": function () {
      return acknowledged && json.student_id === body.student_id && json.progress && json.license &&
        json.progress.current_level === json.license.current_level;
    },
  }, { name: UPDATE });
  if (res.status === 401) dropToken();
  think(cfg.waitMin, cfg.waitMax, cfg.durationS);
}

/** @param {{ start: number[] | null }} data */
export function teardown(data) {
  const session = login(common.baseUrl, common.adminEmail, common.adminPassword);
  if (session === null) {
    console.error("teardown: the admin cannot log in; no final check, no ledger verification");
    return;
  }
  const totals = data.start ? readTotals(session.token) : null;
  if (data.start && totals) {
    // Up to teardown's own awards: what the users' acknowledged awards must account for.
    let growth = 0;
    for (let i = 0; i < totals.before.length; i++) growth += totals.before[i] - data.start[i];
    xpGrowth.add(growth);
    xpUnaccounted.add(-growth);
    ledgerVerified.add(1);
  }
  const final = fullCheck(session.token);
  if (final) {
    finalChecks.add(1);
    desyncs.add(final.violation_count);
    const kinds = final.counts_by_kind || {};
    ledgerMismatches.add(kinds.LEDGER_MISMATCH || 0);
    if (final.violation_count > 0) {
      console.error(
        "final check " + final.id + ": " + final.violation_count + " violations " + JSON.stringify(kinds),
      );
    }
  }
}

const REDUCED = [].concat(
  cfg.vus < PLAN.vus ? ["VUS " + formatCount(cfg.vus) + " (plan 500)"] : [],
  cfg.durationS < PLAN.durationS ? ["DURATION " + formatSeconds(cfg.durationS) + " (plan 5 min)"] : [],
  cfg.rampRate !== PLAN.rampRate ? ["RAMP_RATE " + cfg.rampRate + "/s (plan 100/s)"] : [],
  cfg.waitMin !== PLAN.waitMin || cfg.waitMax !== PLAN.waitMax
    ? ["waits " + cfg.waitMin + "–" + cfg.waitMax + " s (plan 0.1–0.5 s)"]
    : [],
  cfg.students > PLAN.students
    ? ["STUDENTS " + formatCount(cfg.students) + " (plan 100: less contention)"]
    : [],
  common.latencyFactor !== 1 ? ["latency target relaxed ×" + common.latencyFactor] : [],
);

export const handleSummary = summaryHandler({
  scenario: "coupling_enforcer",
  title: "Scenario 2: Coupling enforcer stress",
  users: formatCount(cfg.vus),
  spawnRate: cfg.rampRate + " users/s",
  host: common.baseUrl,
  environment: common.environment,
  reportDir: common.reportDir,
  parameters: [
    ["users (VUS)", formatCount(cfg.vus), "500"],
    ["spawn rate (RAMP_RATE)", cfg.rampRate + "/s", "100/s"],
    ["duration (DURATION)", formatSeconds(cfg.durationS), "5 min"],
    ["students (STUDENTS), PLAYER", "1.." + formatCount(cfg.students), "1..100"],
    ["wait between awards", cfg.waitMin + "–" + cfg.waitMax + " s", "0.1–0.5 s"],
    ["XP per award", cfg.xpMin + "–" + cfg.xpMax, "10–50"],
  ],
  reduced: REDUCED,
  endpoints: ENDPOINTS,
  targets: TARGETS,
  figures: function (data, seconds) {
    const count = function (/** @type {string} */ name) {
      return metricValue(data, name, "count") || 0;
    };
    const achieved = seconds > 0 ? count("http_reqs{name:" + UPDATE + "}") / seconds : 0;
    return [
      "- Offered load: ≈ " + formatRate(OFFERED) + " of awards (" + formatCount(cfg.vus) + " users ÷ " +
      (cfg.waitMin + cfg.waitMax) / 2 + " s mean wait, ramp included); achieved: " + formatRate(achieved) +
      " (the plan sets no throughput target here)",
      "- Acknowledged changes: " + formatCount(count("changes_acknowledged")) + ", " +
      formatCount(count("xp_acknowledged")) + " XP; total XP of students 1.." + formatCount(cfg.students) +
      " grew by " + formatCount(count("xp_total_growth")) + " XP (" +
      (count("ledger_verified") > 0 ? "read before and after" : "could not be read") + ")",
      "- Final check: " + (count("final_checks") > 0
        ? formatCount(count("desyncs")) + " violations (" +
          formatCount(count("ledger_mismatches")) + " LEDGER_MISMATCH)"
        : "did not run") +
      "; violations before the run: " + formatCount(count("baseline_violations")),
    ];
  },
  observations: function (data) {
    const before = metricValue(data, "baseline_violations", "count") || 0;
    return {
      positive: [],
      issues: before > 0
        ? [formatCount(before) + " violations existed before the run (seeded with --desync-rate > 0?)"]
        : [],
      actions: before > 0 ? ["repair or re-seed with --desync-rate 0, then run again"] : [],
    };
  },
});

/**
 * Load scenario 4: the plan's security checklist, as load.
 *
 * Each iteration of each user runs the checklist once:
 *   - auth matrix: no token, a garbage token, a non-bearer scheme, an
 *     `alg: none` token, an expired token, a tampered token (a student's
 *     token with its payload changed to ADMIN) → 401 with WWW-Authenticate;
 *     a student's token → 403; an instructor's token → 200 on the progress
 *     update, 403 on the health API; the admin's token → 200; on each of the
 *     five endpoints;
 *   - injection: SQL injection and markup (XSS) strings in every field of
 *     every body and query, and in the progress update's Idempotency-Key
 *     header → 400 problem+json naming the field (login's free-text email
 *     and password may also answer 401; a string that is a well-formed key,
 *     printable ASCII without spaces, is an opaque key: 200), never echoing
 *     the markup; an unknown body field and an unknown query parameter →
 *     400 naming it;
 *   - bodies: over 16 KB → 413; malformed JSON → 400 naming "body"; a
 *     body that is not application/json → 415; a method the path does not
 *     serve → 405 with Allow.
 * Then teardown() runs the rate-limit burst: one user sends requests until
 * the per-IP limit answers 429 (with Retry-After and the RateLimit headers),
 * checks that later requests in the window are refused too and that /healthz
 * is never limited. 429s are expected there and nowhere else: every request
 * carries a `phase` tag (setup, auth, injection, body, rate_limit) and the
 * thresholds say `http_reqs{phase:rate_limit,status:429}` > 0 and
 * `http_reqs{phase:auth,status:429}` (and injection, body) == 0.
 *
 * The server must NOT exempt this client from the rate limit (no
 * RATE_LIMIT_EXEMPT covering it, RATE_LIMIT_PER_MINUTE > 0), unlike the other
 * scenarios. The whole checklist shares the client's budget (100 requests a
 * minute by default): one iteration sends about 85 requests, and every
 * request reads the `RateLimit` header and, when the window is nearly used
 * up, waits for it to reset, so more users or iterations never meet a 429
 * before the burst (they take longer instead).
 *
 * Environment:
 *   BASE_URL               http://localhost:8000
 *   ADMIN_EMAIL            admin@staging.example.com
 *   ADMIN_PASSWORD         staging_password
 *   INSTRUCTOR_EMAIL       instructor@<ADMIN_EMAIL's domain> (seeded with the admin's password)
 *   INSTRUCTOR_PASSWORD    ADMIN_PASSWORD
 *   STUDENT_EMAIL          student1@academy.example.com
 *   STUDENT_PASSWORD       staging_student_password (the seed's SEED_STUDENT_PASSWORD)
 *   JWT_SECRET             optional: the server's key; then the expired token is validly signed
 *                          (without it, it is an expired-looking token with a wrong signature)
 *   VUS                    1        users running the checklist at once
 *   ITERATIONS             1        checklist runs per user
 *   DURATION               10m      the most the checklist may take (per-vu-iterations maxDuration)
 *   RAMP_RATE              —        not used: users start together
 *   STUDENTS               —        not used: awards go to student 1
 *   RATE_LIMIT             100      the server's RATE_LIMIT_PER_MINUTE (its RateLimit-Policy header wins)
 *   ENVIRONMENT            staging  the report's "Environment"
 *   REPORT_DIR             reports  where handleSummary writes the report (must exist)
 */
import http from "k6/http";
import { check, sleep } from "k6";
import crypto from "k6/crypto";
import { b64encode } from "k6/encoding";
import exec from "k6/execution";
import { Counter } from "k6/metrics";
import {
  bearer,
  bodyJson,
  commonConfig,
  env,
  envInt,
  envSeconds,
  formatCount,
  formatPercent,
  formatSeconds,
  header,
  isProblem,
  login,
  metricValue,
  observe,
  SUMMARY_TREND_STATS,
  summaryHandler,
  target,
  thresholdsOf,
  tokenClaims,
} from "./lib/common.js";

const common = commonConfig();
const domain = common.adminEmail.replace(/^[^@]*@/, "");
const cfg = {
  vus: envInt("VUS", 1, 1),
  iterations: envInt("ITERATIONS", 1, 1),
  durationS: envSeconds("DURATION", "10m"),
  instructorEmail: env("INSTRUCTOR_EMAIL", "instructor@" + domain),
  instructorPassword: env("INSTRUCTOR_PASSWORD", common.adminPassword),
  studentEmail: env("STUDENT_EMAIL", "student1@academy.example.com"),
  studentPassword: env("STUDENT_PASSWORD", "staging_student_password"),
  jwtSecret: env("JWT_SECRET", ""),
  rateLimit: envInt("RATE_LIMIT", 100, 1),
};

const PHASES = ["setup", "auth", "injection", "body", "rate_limit"];
const serverErrors = new Counter("server_errors");

/**
 * @param {string} phase
 * @param {string} label
 * @param {string} text
 */
function phaseChecks(phase, label, text) {
  return target({
    metric: "checks{phase:" + phase + "}",
    expr: "rate==1",
    label: label,
    target: "100 %",
    unit: "%",
    kind: "correctness",
    why: text,
    action: "see the failed checks under Issues; each names the credential, field or body",
  });
}

/**
 * @param {string} phase
 * @param {string} label
 */
function phaseRan(phase, label) {
  return target({
    metric: "http_reqs{phase:" + phase + "}",
    expr: "count>0",
    label: label,
    target: "> 0",
    unit: "count",
    kind: "correctness",
    action: "the phase did not run: look at the setup log lines (logins)",
  });
}

/** @param {string} phase */
function no429(phase) {
  return target({
    metric: "http_reqs{phase:" + phase + ",status:429}",
    expr: "count==0",
    label: "429s in the " + phase + " phase",
    target: "0",
    unit: "count",
    kind: "correctness",
    why: "429s are expected in the burst only",
    action:
      "something else used this client's budget (another run from the same address?): wait a minute, rerun",
  });
}

const TARGETS = [
  phaseChecks("auth", "Auth matrix", "401 without a valid token, 403 without the role, 200 with it"),
  phaseChecks("injection", "Injection in every field", "400 naming the field, no echo, never 500"),
  phaseChecks("body", "Oversized, malformed, mistyped bodies", "413, 400, 415, 405"),
  phaseChecks("rate_limit", "Rate limit", "429 with Retry-After past the limit; /healthz never limited"),
  phaseRan("auth", "Auth matrix requests"),
  phaseRan("injection", "Injection requests"),
  phaseRan("body", "Body requests"),
  target({
    metric: "http_reqs{phase:rate_limit,status:429}",
    expr: "count>0",
    label: "429s in the rate-limit burst",
    target: "> 0",
    unit: "count",
    kind: "correctness",
    why: "plan: 100 requests/min per IP → 429",
    action:
      "the server did not limit this client: RATE_LIMIT_PER_MINUTE > 0 and no RATE_LIMIT_EXEMPT covering it",
  }),
  no429("auth"),
  no429("injection"),
  no429("body"),
  target({
    metric: "rate_limited_unexpected",
    expr: "count==0",
    label: "429s on the setup logins",
    target: "0",
    unit: "count",
    kind: "correctness",
  }),
  target({
    metric: "http_req_failed",
    expr: "rate==0",
    label: "Responses with another status than expected",
    target: "0 %",
    unit: "%",
    kind: "correctness",
    action: "see the failed checks under Issues",
  }),
  target({
    metric: "server_errors",
    expr: "count==0",
    label: "5xx responses",
    target: "0",
    unit: "count",
    kind: "correctness",
    why: "never a 500 for bad input",
    action: "quote the problem's request_id and read the server's error log",
  }),
  target({
    metric: "login_failures",
    expr: "count==0",
    label: "Admin, instructor and student logins",
    target: "0 failed",
    unit: "count",
    kind: "correctness",
    action:
      "set ADMIN_*, INSTRUCTOR_* and STUDENT_* to accounts of the server (STUDENT_PASSWORD: the seed's)",
  }),
];

const thresholds = thresholdsOf(TARGETS, []);
for (let i = 0; i < PHASES.length; i++) {
  const key = "http_reqs{phase:" + PHASES[i] + "}";
  if (!thresholds[key]) thresholds[key] = [];
  thresholds[key].push("count>=0");
  const failed = "http_req_failed{phase:" + PHASES[i] + "}";
  thresholds[failed] = ["rate>=0"];
  // The figures table reads every phase's checks (setup's logins have no target of their own).
  const checks = "checks{phase:" + PHASES[i] + "}";
  if (!thresholds[checks]) thresholds[checks] = ["rate>=0"];
}

export const options = {
  scenarios: {
    security: {
      executor: "per-vu-iterations",
      vus: cfg.vus,
      iterations: cfg.iterations,
      maxDuration: Math.round(cfg.durationS) + "s",
    },
  },
  thresholds: thresholds,
  summaryTrendStats: SUMMARY_TREND_STATS,
  teardownTimeout: "3m",
};

// ---- requests, paced by the rate limiter's own headers ---------------------

let remaining = -1;
let resetSeconds = 0;
let policyLimit = 0;

/**
 * Sends a checklist request with its expected statuses (anything else counts in http_req_failed).
 * Before it, when the limiter said few requests remain in this window, waits for the window to reset.
 * @param {string} method
 * @param {string} path
 * @param {string | null} body
 * @param {{ [name: string]: string }} headers
 * @param {string} phase
 * @param {string} name
 * @param {number[]} expected
 */
function send(method, path, body, headers, phase, name, expected) {
  // Every user may have one request in flight: keep that many (and one) in reserve.
  if (remaining >= 0 && remaining <= cfg.vus + 1) {
    sleep(resetSeconds + 1);
    remaining = -1;
  }
  const res = http.request(method, common.baseUrl + path, body, {
    headers: headers,
    tags: { name: name, phase: phase },
    responseCallback: http.expectedStatuses.apply(http, expected),
  });
  const limit = header(res, "RateLimit");
  const m = limit ? /r=(\d+).*t=(\d+)/.exec(limit) : null;
  if (m) {
    remaining = Number(m[1]);
    resetSeconds = Number(m[2]);
  }
  const policy = header(res, "RateLimit-Policy");
  const q = policy ? /q=(\d+)/.exec(policy) : null;
  if (q) policyLimit = Number(q[1]);
  if (res.status >= 500) serverErrors.add(1);
  return observe(res);
}

/**
 * Checks one response, tagged with its phase; the check's name says what was sent.
 * @param {import("k6/http").Response} res
 * @param {string} phase
 * @param {string} what
 * @param {(r: import("k6/http").Response) => boolean} ok
 */
function expect(res, phase, what, ok) {
  /** @type {{ [name: string]: (r: import("k6/http").Response) => boolean }} */
  const sets = {};
  sets[what] = ok;
  const passed = check(res, sets, { phase: phase });
  if (!passed) console.warn(what + ": got " + res.status + " " + String(res.body).slice(0, 200));
  return passed;
}

// ---- tokens ----------------------------------------------------------------

/** @param {any} value */
function b64url(value) {
  return b64encode(JSON.stringify(value), "rawurl");
}

/**
 * @param {any} claims
 * @param {string} secret
 */
function signHs256(claims, secret) {
  const data = b64url({ alg: "HS256", typ: "JWT" }) + "." + b64url(claims);
  return data + "." + crypto.hmac("sha256", secret, data, "base64rawurl");
}

/**
 * Every credential of the matrix and what each endpoint must answer it (a status, or per endpoint).
 * @param {any} data
 * @returns {{ name: string, headers: { [name: string]: string }, expect: (endpoint: Endpoint) => number }[]}
 */
function credentials(data) {
  const now = Math.floor(Date.now() / 1000);
  const adminSub = data.admin ? String(tokenClaims(data.admin).sub) : "1";
  const claims = { sub: adminSub, role: "ADMIN", iss: "levelguard", iat: now, exp: now + 600 };
  const expired = { sub: adminSub, role: "ADMIN", iss: "levelguard", iat: now - 7200, exp: now - 3600 };
  const unauthenticated = function () {
    return 401;
  };
  /** @type {{ name: string, headers: { [name: string]: string }, expect: (endpoint: Endpoint) => number }[]} */
  const list = [
    { name: "no token", headers: {}, expect: unauthenticated },
    { name: "a garbage token", headers: bearer("garbage"), expect: unauthenticated },
    {
      name: "a non-bearer scheme",
      headers: { Authorization: "Basic " + b64encode(common.adminEmail + ":" + common.adminPassword) },
      expect: unauthenticated,
    },
    {
      name: "an alg:none token",
      headers: bearer(b64url({ alg: "none", typ: "JWT" }) + "." + b64url(claims) + "."),
      expect: unauthenticated,
    },
    {
      name: cfg.jwtSecret ? "an expired token (validly signed)" : "an expired-looking token",
      headers: bearer(
        cfg.jwtSecret
          ? signHs256(expired, cfg.jwtSecret)
          : b64url({ alg: "HS256", typ: "JWT" }) + "." + b64url(expired) + "." +
            b64encode("no-signature", "rawurl"),
      ),
      expect: unauthenticated,
    },
  ];
  if (data.student) {
    const parts = String(data.student).split(".");
    const forged = tokenClaims(data.student);
    forged.role = "ADMIN";
    list.push({
      name: "a tampered token (a student's, payload changed to ADMIN)",
      headers: bearer(parts[0] + "." + b64url(forged) + "." + parts[2]),
      expect: unauthenticated,
    });
    list.push({
      name: "a student's token",
      headers: bearer(data.student),
      expect: function () {
        return 403;
      },
    });
  }
  if (data.instructor) {
    list.push({
      name: "an instructor's token",
      headers: bearer(data.instructor),
      expect: function (endpoint) {
        return endpoint.instructor ? 200 : 403;
      },
    });
  }
  if (data.admin) {
    list.push({
      name: "the admin's token",
      headers: bearer(data.admin),
      expect: function () {
        return 200;
      },
    });
  }
  return list;
}

/**
 * @typedef {object} Endpoint
 * @property {string} name
 * @property {string} method
 * @property {string} path
 * @property {string | null} body
 * @property {boolean} instructor whether INSTRUCTOR may call it
 */

/** @type {Endpoint[]} */
const ENDPOINTS = [
  {
    name: "progress_update",
    method: "POST",
    path: "/api/v1/specializations/progress/update",
    body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 1 }),
    instructor: true,
  },
  { name: "health_status", method: "GET", path: "/api/v1/health/status", body: null, instructor: false },
  {
    name: "health_metrics",
    method: "GET",
    path: "/api/v1/health/metrics?window=24h",
    body: null,
    instructor: false,
  },
  {
    name: "health_violations",
    method: "GET",
    path: "/api/v1/health/violations?limit=50",
    body: null,
    instructor: false,
  },
  { name: "check_now", method: "POST", path: "/api/v1/health/check-now", body: null, instructor: false },
];

// ---- the phases ------------------------------------------------------------

/** @param {any} data */
function authMatrix(data) {
  const creds = credentials(data);
  for (let c = 0; c < creds.length; c++) {
    for (let e = 0; e < ENDPOINTS.length; e++) {
      const endpoint = ENDPOINTS[e];
      const status = creds[c].expect(endpoint);
      /** @type {{ [name: string]: string }} */
      const headers = {};
      for (const k in creds[c].headers) headers[k] = creds[c].headers[k];
      if (endpoint.body !== null) headers["Content-Type"] = "application/json";
      const res = send(endpoint.method, endpoint.path, endpoint.body, headers, "auth", endpoint.name, [
        status,
      ]);
      expect(res, "auth", "auth: " + creds[c].name + " on " + endpoint.name + " → " + status, function (r) {
        if (r.status !== status) return false;
        if (status === 401) return isProblem(r, 401) && /^Bearer/i.test(header(r, "WWW-Authenticate") || "");
        if (status === 403) return isProblem(r, 403);
        return true;
      });
    }
  }
  // Wrong password and unknown email: the same 401, the same words.
  const wrong = send(
    "POST",
    "/api/v1/auth/login",
    JSON.stringify({ email: common.adminEmail, password: "not-the-password-" + Date.now() }),
    { "Content-Type": "application/json" },
    "auth",
    "login",
    [401],
  );
  const unknown = send(
    "POST",
    "/api/v1/auth/login",
    JSON.stringify({ email: "nobody-" + Date.now() + "@" + domain, password: "not-the-password" }),
    { "Content-Type": "application/json" },
    "auth",
    "login",
    [401],
  );
  const a = bodyJson(wrong);
  const b = bodyJson(unknown);
  expect(wrong, "auth", "auth: a wrong password and an unknown email get the same 401", function (r) {
    return isProblem(r, 401) && isProblem(unknown, 401) && a.detail === b.detail;
  });
}

const SQL_INJECTIONS = [
  "1; DROP TABLE users; --",
  "' OR '1'='1",
  "1' UNION SELECT email, hashed_password FROM users --",
  "'; SELECT pg_sleep(5); --",
];
const MARKUP = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'];

/**
 * @typedef {object} Field
 * @property {string} where e.g. `POST /api/v1/auth/login email`
 * @property {string} name the field the problem must name
 * @property {(value: string) => { method: string, path: string, body: string | null, json: boolean, headers?: { [name: string]: string } }} build
 * @property {number[]} statuses what may answer (400, and 401 for login's free text)
 * @property {(value: string) => boolean} [accepts] values the field takes as they are (then: 200)
 */

/** @type {Field[]} */
const FIELDS = [
  {
    where: "login email",
    name: "email",
    statuses: [400, 401],
    build: function (v) {
      return {
        method: "POST",
        path: "/api/v1/auth/login",
        body: JSON.stringify({ email: v, password: "x-password" }),
        json: true,
      };
    },
  },
  {
    where: "login password",
    name: "password",
    statuses: [400, 401],
    build: function (v) {
      return {
        method: "POST",
        path: "/api/v1/auth/login",
        body: JSON.stringify({ email: common.adminEmail, password: v }),
        json: true,
      };
    },
  },
];
const UPDATE_FIELDS = ["student_id", "specialization_id", "xp_change"];
for (let i = 0; i < UPDATE_FIELDS.length; i++) {
  const field = UPDATE_FIELDS[i];
  FIELDS.push({
    where: "progress update " + field,
    name: field,
    statuses: [400],
    build: function (v) {
      /** @type {{ [name: string]: any }} */
      const body = { student_id: 1, specialization_id: "PLAYER", xp_change: 10 };
      body[field] = v;
      return {
        method: "POST",
        path: "/api/v1/specializations/progress/update",
        body: JSON.stringify(body),
        json: true,
      };
    },
  });
}
// The header is an opaque key: printable ASCII without spaces is a key like any other (stored
// through a bound parameter); anything else is refused naming the header.
FIELDS.push({
  where: "progress update Idempotency-Key header",
  name: "Idempotency-Key",
  statuses: [400],
  accepts: function (v) {
    return /^[\x21-\x7e]{1,255}$/.test(v);
  },
  build: function (v) {
    return {
      method: "POST",
      path: "/api/v1/specializations/progress/update",
      body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 10 }),
      json: true,
      headers: { "Idempotency-Key": v },
    };
  },
});
FIELDS.push({
  where: "check-now user_id",
  name: "user_id",
  statuses: [400],
  build: function (v) {
    return {
      method: "POST",
      path: "/api/v1/health/check-now",
      body: JSON.stringify({ user_id: v }),
      json: true,
    };
  },
});
const QUERY_FIELDS = [
  ["/api/v1/health/metrics", "window"],
  ["/api/v1/health/violations", "kind"],
  ["/api/v1/health/violations", "specialization"],
  ["/api/v1/health/violations", "limit"],
  ["/api/v1/health/violations", "cursor"],
];
for (let i = 0; i < QUERY_FIELDS.length; i++) {
  const path = QUERY_FIELDS[i][0];
  const field = QUERY_FIELDS[i][1];
  FIELDS.push({
    where: path.replace("/api/v1/health/", "") + "?" + field,
    name: field,
    statuses: [400],
    build: function (v) {
      return {
        method: "GET",
        path: path + "?" + field + "=" + encodeURIComponent(v),
        body: null,
        json: false,
      };
    },
  });
}

/** @param {any} data */
function injection(data) {
  // Each iteration gives every field one SQL string and one markup string, rotating through the lists.
  const round = exec.vu.iterationInScenario + exec.vu.idInTest;
  for (let f = 0; f < FIELDS.length; f++) {
    const field = FIELDS[f];
    const values = [SQL_INJECTIONS[(round + f) % SQL_INJECTIONS.length], MARKUP[(round + f) % MARKUP.length]];
    for (let v = 0; v < values.length; v++) {
      const value = values[v];
      const req = field.build(value);
      /** @type {{ [name: string]: string }} */
      const headers = bearer(data.admin);
      if (req.json) headers["Content-Type"] = "application/json";
      for (const k in req.headers || {}) {
        headers[k] = /** @type {{ [name: string]: string }} */ (req.headers)[k];
      }
      const accepted = field.accepts !== undefined && field.accepts(value);
      const statuses = accepted ? [200] : field.statuses;
      const res = send(req.method, req.path, req.body, headers, "injection", "injection", statuses);
      const markup = value.indexOf("<") >= 0;
      expect(
        res,
        "injection",
        "injection: " + (markup ? "markup" : "SQL") + " in " + field.where + " → " + statuses.join(" or ") +
          (statuses[0] === 400 ? " naming " + field.name : accepted ? " (a well-formed key)" : ""),
        function (r) {
          if (statuses.indexOf(r.status) < 0) return false;
          if (markup && String(r.body).indexOf(value) >= 0) return false;
          if (r.status === 200) return true;
          return r.status === 400 ? isProblem(r, 400, field.name) : isProblem(r, r.status);
        },
      );
    }
  }
  const extra = send(
    "POST",
    "/api/v1/specializations/progress/update",
    JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 10, role: "ADMIN" }),
    jsonWith(data.admin),
    "injection",
    "injection",
    [400],
  );
  expect(extra, "injection", "injection: an unknown body field → 400 naming it", function (r) {
    return isProblem(r, 400, "role");
  });
  const query = send(
    "GET",
    "/api/v1/health/metrics?window=24h&debug=1",
    null,
    bearer(data.admin),
    "injection",
    "injection",
    [
      400,
    ],
  );
  expect(query, "injection", "injection: an unknown query parameter → 400 naming it", function (r) {
    return isProblem(r, 400, "debug");
  });
}

/** @param {string | null} token */
function jsonWith(token) {
  const headers = bearer(token);
  headers["Content-Type"] = "application/json";
  return headers;
}

/** @param {any} data */
function bodies(data) {
  let pad = "";
  while (pad.length < 17 * 1024) pad += "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  const update = "/api/v1/specializations/progress/update";
  const cases = [
    {
      what: "a progress update over 16 KB → 413",
      method: "POST",
      path: update,
      body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 1, pad: pad }),
      headers: jsonWith(data.admin),
      status: 413,
    },
    {
      what: "a login over 16 KB → 413",
      method: "POST",
      path: "/api/v1/auth/login",
      body: JSON.stringify({ email: common.adminEmail, password: pad }),
      headers: jsonWith(null),
      status: 413,
    },
    {
      what: "a check-now body over 16 KB → 413",
      method: "POST",
      path: "/api/v1/health/check-now",
      body: JSON.stringify({ pad: pad }),
      headers: jsonWith(data.admin),
      status: 413,
    },
    {
      what: "malformed JSON in a progress update → 400 naming body",
      method: "POST",
      path: update,
      body: '{"student_id": 1,',
      headers: jsonWith(data.admin),
      status: 400,
      field: "body",
    },
    {
      what: "malformed JSON in a login → 400 naming body",
      method: "POST",
      path: "/api/v1/auth/login",
      body: '{"email": ',
      headers: jsonWith(null),
      status: 400,
      field: "body",
    },
    {
      what: "a progress update as text/plain → 415",
      method: "POST",
      path: update,
      body: JSON.stringify({ student_id: 1, specialization_id: "PLAYER", xp_change: 1 }),
      headers: { Authorization: "Bearer " + data.admin, "Content-Type": "text/plain" },
      status: 415,
    },
    {
      what: "a login as a form → 415",
      method: "POST",
      path: "/api/v1/auth/login",
      body: "email=" + encodeURIComponent(common.adminEmail) + "&password=x",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      status: 415,
    },
    {
      what: "GET on the progress update → 405 with Allow",
      method: "GET",
      path: update,
      body: null,
      headers: bearer(data.admin),
      status: 405,
    },
  ];
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    const res = send(c.method, c.path, c.body, c.headers, "body", "body", [c.status]);
    expect(res, "body", "body: " + c.what, function (r) {
      if (!isProblem(r, c.status, c.field)) return false;
      return c.status !== 405 || (header(r, "Allow") || "").indexOf("POST") >= 0;
    });
  }
}

// ---- setup, iterations, the burst -----------------------------------------

/**
 * Waits, when this client's rate-limit window has too little left for the
 * logins and the first requests (say, a run a minute ago used it), until it
 * resets: a 429 before the burst would be a failure.
 */
function awaitBudget() {
  const res = http.get(common.baseUrl + "/api/v1/health/status", {
    tags: { name: "budget_probe", phase: "setup" },
    responseCallback: http.expectedStatuses(401, 429),
  });
  const limit = header(res, "RateLimit");
  const m = limit ? /r=(\d+).*t=(\d+)/.exec(limit) : null;
  const left = m ? Number(m[1]) : res.status === 429 ? 0 : Infinity;
  const wait = m ? Number(m[2]) : res.status === 429 ? Number(header(res, "Retry-After")) || 60 : 0;
  // One checklist run is about 85 requests; the logins come first.
  if (left < Math.min(90, cfg.rateLimit - 1)) {
    console.warn(
      "setup: " + left + " requests left in this rate-limit window; waiting " + wait + " s for the next",
    );
    sleep(wait + 1);
  }
}

export function setup() {
  awaitBudget();
  /** @param {string} who @param {string} email @param {string} password */
  const tokenOf = function (who, email, password) {
    const session = login(common.baseUrl, email, password, 1, { phase: "setup" });
    if (session === null) {
      console.error("setup: " + who + " " + email + " cannot log in; its rows of the matrix are left out");
    }
    return session === null ? null : session.token;
  };
  return {
    admin: tokenOf("the admin", common.adminEmail, common.adminPassword),
    instructor: tokenOf("the instructor", cfg.instructorEmail, cfg.instructorPassword),
    student: tokenOf("the student", cfg.studentEmail, cfg.studentPassword),
  };
}

/** @param {any} data */
export default function (data) {
  authMatrix(data);
  injection(data);
  bodies(data);
}

/**
 * The rate-limit burst, after every checklist request: one user, until the limit answers 429.
 * @param {any} data
 */
export function teardown(data) {
  const limit = policyLimit || cfg.rateLimit;
  const most = limit * 2 + 20;
  /** @param {string} name */
  const burstRequest = function (name) {
    const res = http.get(common.baseUrl + "/api/v1/health/status", {
      headers: bearer(data.admin),
      tags: { name: name, phase: "rate_limit" },
      responseCallback: http.expectedStatuses(200, 429),
    });
    if (res.status >= 500) serverErrors.add(1);
    return res;
  };
  let answered = 0;
  /** @type {import("k6/http").Response | null} */
  let refused = null;
  for (let i = 0; i < most && refused === null; i++) {
    const res = burstRequest("rate_limit_burst");
    if (res.status === 429) refused = res;
    else if (res.status === 200) answered++;
    else break;
  }
  if (refused === null) {
    console.error(
      "rate limit: no 429 after " + answered + " requests; the server does not limit this client " +
        "(RATE_LIMIT_PER_MINUTE=0, or RATE_LIMIT_EXEMPT covers it)",
    );
    check(null, {
      "rate limit: a burst over the limit is refused with 429": function () {
        return false;
      },
    }, { phase: "rate_limit" });
    return;
  }
  const r = refused;
  const wait = Number(header(r, "Retry-After"));
  check(r, {
    "rate limit: a burst over the limit is refused with 429": function (x) {
      return x.status === 429;
    },
    "rate limit: no more than the limit is answered in a window": function () {
      return answered <= limit;
    },
    "rate limit: 429 has Retry-After (1–60 s)": function () {
      return Math.floor(wait) === wait && wait >= 1 && wait <= 60;
    },
    "rate limit: 429 has RateLimit and RateLimit-Policy": function (x) {
      return header(x, "RateLimit") !== null && /q=\d+/.test(header(x, "RateLimit-Policy") || "");
    },
    "rate limit: 429 is problem+json": function (x) {
      return isProblem(x, 429);
    },
  }, { phase: "rate_limit" });
  const again = burstRequest("rate_limit_after");
  check(again, {
    "rate limit: the next request in the window is refused too": function (x) {
      return x.status === 429;
    },
  }, { phase: "rate_limit" });
  const probe = http.get(common.baseUrl + "/healthz", {
    tags: { name: "healthz", phase: "rate_limit" },
  });
  check(probe, {
    "rate limit: /healthz is never limited": function (x) {
      return x.status === 200;
    },
  }, { phase: "rate_limit" });
}

export const handleSummary = summaryHandler({
  scenario: "security",
  title: "Scenario 4: Security checklist",
  users: formatCount(cfg.vus),
  spawnRate: "all at once",
  host: common.baseUrl,
  environment: common.environment,
  reportDir: common.reportDir,
  parameters: [
    ["users (VUS)", formatCount(cfg.vus), "1"],
    ["checklist runs per user (ITERATIONS)", formatCount(cfg.iterations), "1"],
    ["longest run (DURATION)", formatSeconds(cfg.durationS), "10 min"],
    [
      "expired token",
      cfg.jwtSecret ? "validly signed (JWT_SECRET given)" : "expired-looking, wrong signature",
      "—",
    ],
    [
      "rate limit (RATE_LIMIT or the server's RateLimit-Policy)",
      formatCount(cfg.rateLimit) + "/min",
      "100/min",
    ],
  ],
  reduced: [],
  endpoints: [],
  targets: TARGETS,
  figures: function (data) {
    const lines = [
      "",
      "| phase | requests | checks passed | unexpected status | 429s |",
      "| --- | ---: | ---: | ---: | ---: |",
    ];
    for (let i = 0; i < PHASES.length; i++) {
      const p = PHASES[i];
      const checks = data.metrics["checks{phase:" + p + "}"];
      const passes = checks ? checks.values.passes : 0;
      const fails = checks ? checks.values.fails : 0;
      const failed = metricValue(data, "http_req_failed{phase:" + p + "}", "rate");
      lines.push(
        "| " + p + " | " + formatCount(metricValue(data, "http_reqs{phase:" + p + "}", "count") || 0) +
          " | " +
          formatCount(passes) + " of " + formatCount(passes + fails) + " | " +
          (failed === null ? "—" : formatPercent(failed)) + " | " +
          formatCount(metricValue(data, "http_reqs{phase:" + p + ",status:429}", "count") || 0) + " |",
      );
    }
    return lines;
  },
});

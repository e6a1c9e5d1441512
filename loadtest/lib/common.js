/**
 * Shared helpers of the Levelguard k6 scenarios (loadtest/*.js): configuration
 * from environment variables, login, weighted task choice, think times,
 * response checks, threshold targets, and the end-of-test report
 * (`handleSummary`: the plan's "Load Testing Report" in Markdown, the raw
 * k6 summary as JSON beside it, and a short summary on stdout).
 *
 * Plain ES2019 so it runs on k6 0.48 and every later version: no `?.`, no
 * `??`, no TypeScript, no remote imports (no jslib), only k6's built-in
 * modules. `deno task test` parses it with acorn (ecmaVersion 2019) and
 * type-checks it against @types/k6.
 */
import http from "k6/http";
import { check, sleep } from "k6";
import exec from "k6/execution";
import { b64decode } from "k6/encoding";
import { Counter } from "k6/metrics";

// ---- configuration --------------------------------------------------------

/**
 * An environment variable (`k6 run -e NAME=value` or the process environment), or the fallback.
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
export function env(name, fallback) {
  const value = __ENV[name];
  return value === undefined || value === "" ? fallback : value;
}

/**
 * A number from the environment, at least `min`; a bad value stops the run in the init context.
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @param {boolean} [whole] must be a whole number
 * @returns {number}
 */
export function envNumber(name, fallback, min, whole) {
  const text = env(name, String(fallback));
  const value = Number(text);
  if (!isFinite(value) || value < min || (whole && Math.floor(value) !== value)) {
    throw new Error(
      name + " must be " + (whole ? "a whole number" : "a number") + " of at least " + min + ", got " +
        JSON.stringify(text),
    );
  }
  return value;
}

/**
 * A whole number from the environment, at least `min`.
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @returns {number}
 */
export function envInt(name, fallback, min) {
  return envNumber(name, fallback, min, true);
}

/**
 * Seconds from a duration such as `10m`, `90s`, `1m30s`, `250ms`, `1h` or a bare number of seconds.
 * @param {string} text
 * @returns {number | null} null when it is not a duration
 */
export function parseDuration(text) {
  const trimmed = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  if (!/^(\d+(\.\d+)?(ms|h|m|s))+$/.test(trimmed)) return null;
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let seconds = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let m = re.exec(trimmed);
  while (m !== null) {
    seconds += Number(m[1]) * units[/** @type {"ms" | "s" | "m" | "h"} */ (m[2])];
    m = re.exec(trimmed);
  }
  return seconds;
}

/**
 * A positive duration in seconds from the environment (see `parseDuration`).
 * @param {string} name
 * @param {string} fallback
 * @returns {number}
 */
export function envSeconds(name, fallback) {
  const text = env(name, fallback);
  const seconds = parseDuration(text);
  if (seconds === null || seconds <= 0) {
    throw new Error(name + " must be a duration such as 10m, 90s or 1m30s, got " + JSON.stringify(text));
  }
  return seconds;
}

/**
 * Weights of named tasks from an environment variable such as `WEIGHTS=10:3:1`.
 * @param {string} name
 * @param {number[]} fallback
 * @returns {number[]}
 */
export function envWeights(name, fallback) {
  const text = env(name, fallback.join(":"));
  const weights = text.split(":").map(Number);
  const bad = weights.length !== fallback.length ||
    weights.some(function (w) {
      return !isFinite(w) || w < 0;
    }) ||
    weights.reduce(function (a, b) {
        return a + b;
      }, 0) <= 0;
  if (bad) {
    throw new Error(
      name + " must be " + fallback.length + " non-negative weights like " + fallback.join(":") + ", got " +
        JSON.stringify(text),
    );
  }
  return weights;
}

/** Settings every scenario shares. */
export function commonConfig() {
  return {
    baseUrl: env("BASE_URL", "http://localhost:8000").replace(/\/+$/, ""),
    adminEmail: env("ADMIN_EMAIL", "admin@staging.example.com"),
    adminPassword: env("ADMIN_PASSWORD", "staging_password"),
    environment: env("ENVIRONMENT", "staging"),
    reportDir: env("REPORT_DIR", "reports").replace(/\/+$/, ""),
    // Multiplies every latency target (e.g. 20 on a shared CI box); anything but 1 caps the verdict at CONDITIONAL.
    latencyFactor: envNumber("LATENCY_TARGET_FACTOR", 1, 0.001),
  };
}

// ---- durations, ramps and load -------------------------------------------

/**
 * A k6 duration string for a number of seconds (`"20000ms"`).
 * @param {number} seconds
 */
export function k6Duration(seconds) {
  return Math.max(0, Math.round(seconds * 1000)) + "ms";
}

/**
 * Seconds in words: `10 min`, `1 min 30 s`, `6 s`, `0.25 s`.
 * @param {number} seconds
 */
export function formatSeconds(seconds) {
  if (seconds < 60) return (Math.round(seconds * 100) / 100) + " s";
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  const parts = [];
  if (h) parts.push(h + " h");
  if (m) parts.push(m + " min");
  if (s) parts.push(s + " s");
  return parts.join(" ");
}

/**
 * A `ramping-vus` scenario: users start at `rampRate` per second up to `vus`,
 * then stay until `durationS` (the ramp counts towards the duration, as a
 * Locust run time does).
 * @param {{ vus: number, rampRate: number, durationS: number, gracefulStopS: number, exec?: string }} p
 */
export function rampingVus(p) {
  const rampS = p.vus / p.rampRate;
  const stages = rampS >= p.durationS
    ? [{ duration: k6Duration(p.durationS), target: Math.max(1, Math.round(p.rampRate * p.durationS)) }]
    : [
      { duration: k6Duration(rampS), target: p.vus },
      { duration: k6Duration(p.durationS - rampS), target: p.vus },
    ];
  /** @type {import("k6/options").RampingVUsScenario} */
  const scenario = {
    executor: "ramping-vus",
    startVUs: 0,
    stages: stages,
    gracefulRampDown: "0s",
    gracefulStop: k6Duration(p.gracefulStopS),
  };
  if (p.exec) scenario.exec = p.exec;
  return scenario;
}

/**
 * User-seconds a `rampingVus` scenario runs (the area under its VU curve).
 * @param {{ vus: number, rampRate: number, durationS: number }} p
 */
export function vuSeconds(p) {
  const rampS = p.vus / p.rampRate;
  if (rampS >= p.durationS) return (p.rampRate * p.durationS * p.durationS) / 2;
  return (p.vus * rampS) / 2 + p.vus * (p.durationS - rampS);
}

/**
 * The request rate a closed-model scenario offers: every user sends one
 * request per mean wait (plus the time the request itself takes, which the
 * server decides), so users ÷ mean wait is the most it can offer.
 * @param {{ vus: number, rampRate: number, durationS: number, waitMin: number, waitMax: number }} p
 */
export function offeredRate(p) {
  const meanWait = (p.waitMin + p.waitMax) / 2;
  return vuSeconds(p) / Math.max(meanWait, 0.001) / p.durationS;
}

/**
 * Seconds left in the running scenario (which started at `exec.scenario.startTime`).
 * @param {number} durationS
 */
export function secondsLeft(durationS) {
  return (exec.scenario.startTime + durationS * 1000 - Date.now()) / 1000;
}

/**
 * Waits a random time between `minS` and `maxS`, but not past the scenario's end.
 * @param {number} minS
 * @param {number} maxS
 * @param {number} durationS
 */
export function think(minS, maxS, durationS) {
  const wait = Math.min(minS + Math.random() * (maxS - minS), Math.max(0, secondsLeft(durationS)));
  if (wait > 0) sleep(wait);
}

/**
 * A whole number from min to max, both included.
 * @param {number} min
 * @param {number} max
 */
export function randInt(min, max) {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/**
 * One of `items`, chosen with probability proportional to `weights`.
 * @template T
 * @param {T[]} items
 * @param {number[]} weights
 * @returns {T}
 */
export function pickWeighted(items, weights) {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  let r = Math.random() * total;
  for (let i = 0; i < items.length; i++) {
    r -= weights[i];
    if (r < 0) return items[i];
  }
  return items[items.length - 1];
}

// ---- HTTP ------------------------------------------------------------------

/** The specializations of the API. */
export const SPECIALIZATIONS = ["PLAYER", "COACH", "INTERNSHIP"];

/**
 * Headers for a JSON request, with a bearer token when given.
 * @param {string | null} token
 * @returns {{ [name: string]: string }}
 */
export function jsonHeaders(token) {
  /** @type {{ [name: string]: string }} */
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  return headers;
}

/**
 * Headers with only a bearer token (GETs and bodiless POSTs).
 * @param {string | null} token
 * @returns {{ [name: string]: string }}
 */
export function bearer(token) {
  return token ? { Authorization: "Bearer " + token } : {};
}

/**
 * The parsed JSON body of a response, or null.
 * @param {import("k6/http").Response} res
 * @returns {any}
 */
export function bodyJson(res) {
  if (typeof res.body !== "string" || res.body === "") return null;
  try {
    return JSON.parse(res.body);
  } catch (_) {
    return null;
  }
}

/**
 * A response header by name, whatever its case (k6 canonicalizes names: `Ratelimit-Policy`).
 * @param {import("k6/http").Response} res
 * @param {string} name
 * @returns {string | null}
 */
export function header(res, name) {
  const wanted = name.toLowerCase();
  const headers = res.headers || {};
  for (const key in headers) {
    if (key.toLowerCase() === wanted) return headers[key];
  }
  return null;
}

/**
 * Seconds a 429 or 503 asks the client to wait (`Retry-After`), or the fallback.
 * @param {import("k6/http").Response} res
 * @param {number} fallback
 */
export function retryAfter(res, fallback) {
  const value = Number(header(res, "Retry-After"));
  return isFinite(value) && value > 0 ? value : fallback;
}

/**
 * True when a response is an RFC 9457 problem with this status (and, when given, naming `field`).
 * @param {import("k6/http").Response} res
 * @param {number} status
 * @param {string} [field]
 */
export function isProblem(res, status, field) {
  const type = header(res, "Content-Type") || "";
  if (res.status !== status || type.indexOf("application/problem+json") !== 0) return false;
  const body = bodyJson(res);
  if (!body || body.status !== status || typeof body.title !== "string") return false;
  if (field === undefined) return true;
  return Array.isArray(body.errors) &&
    body.errors.some(function (/** @type {any} */ e) {
      return e && e.field === field;
    });
}

// 429s anywhere but the security scenario's rate-limit burst: the server limits the load generator.
const unexpected429 = new Counter("rate_limited_unexpected");
let warned429 = false;

/**
 * Counts an unexpected 429 (and says once per user what to change); returns the response.
 * @param {import("k6/http").Response} res
 */
export function observe(res) {
  if (res.status === 429) {
    unexpected429.add(1);
    if (!warned429) {
      warned429 = true;
      console.warn(
        "429 Too Many Requests: the server rate-limits this load generator; start it with " +
          "RATE_LIMIT_EXEMPT=<this machine's address>/32 or RATE_LIMIT_PER_MINUTE=0 for load runs",
      );
    }
  }
  return res;
}

// ---- login -----------------------------------------------------------------

/**
 * How a user logs in. By default as the plan's clients do (its Locust users):
 * once, at its first task, never retrying; a user whose login failed sends
 * nothing more, and each task it would have run is counted in
 * `requests_without_login`, so the failure shows instead of being waited
 * out. `LOGIN_RETRIES=N` (N > 0) is the retrying client: a 503 with
 * `Retry-After` is waited out up to N times, and a user without a token (or
 * whose token got a 401) logs in again at its next task.
 */
export function loginRetries() {
  return envInt("LOGIN_RETRIES", 0, 0);
}

/** True for the retrying client (`LOGIN_RETRIES` > 0). */
export function retryingLogins() {
  return loginRetries() > 0;
}

const loginRetryCount = new Counter("login_retries");
const loginFailures = new Counter("login_failures");
const loginsGivenUp = new Counter("logins_given_up");
const requestsWithoutLogin = new Counter("requests_without_login");

/**
 * Logs in. Returns the token and when to renew it, or null: a failure is
 * counted in `login_failures`. The plan's client (the default) tries once and
 * a 503 is a failed request like any other; the retrying client
 * (`LOGIN_RETRIES`) waits out a 503 with `Retry-After` up to that many times,
 * and one still told to retry after the last is counted in `logins_given_up`.
 * @param {string} baseUrl
 * @param {string} email
 * @param {string} password
 * @param {number} [attempts] default 1 + LOGIN_RETRIES
 * @param {{ [name: string]: string }} [tags] more tags for the requests and checks (e.g. a `phase`)
 * @returns {{ token: string, renewAt: number, userId: string } | null}
 */
export function login(baseUrl, email, password, attempts, tags) {
  const tries = attempts || 1 + loginRetries();
  const allTags = withTags({ name: "login" }, tags);
  const checkName = tries > 1
    ? "login: 200 with a bearer token, or 503 with Retry-After"
    : "login: 200 with a bearer token";
  for (let attempt = 1; attempt <= tries; attempt++) {
    const res = observe(http.post(
      baseUrl + "/api/v1/auth/login",
      JSON.stringify({ email: email, password: password }),
      {
        headers: jsonHeaders(null),
        tags: allTags,
        // A client that retries takes a 503 with Retry-After as an answer; one that does not, as a failure.
        responseCallback: tries > 1 ? http.expectedStatuses(200, 503) : http.expectedStatuses(200),
      },
    ));
    const body = bodyJson(res);
    /** @type {{ [name: string]: (r: import("k6/http").Response) => boolean }} */
    const checks = {};
    checks[checkName] = function (r) {
      return (r.status === 200 && body && typeof body.access_token === "string" &&
        body.token_type === "bearer") ||
        (tries > 1 && r.status === 503 && header(r, "Retry-After") !== null);
    };
    check(res, checks, allTags);
    if (res.status === 200 && body && typeof body.access_token === "string") {
      const lifetime = typeof body.expires_in === "number" ? body.expires_in : 1800;
      return {
        token: body.access_token,
        // Renew a minute before expiry (or halfway through a short lifetime).
        renewAt: Date.now() + Math.max(lifetime - 60, lifetime / 2) * 1000,
        userId: tokenSubject(body.access_token),
      };
    }
    if (tries === 1 || res.status !== 503 || header(res, "Retry-After") === null) break;
    if (attempt === tries) {
      // The retrying client tries again at its next task: not (yet) a failure.
      loginsGivenUp.add(1);
      return null;
    }
    loginRetryCount.add(1);
    sleep(retryAfter(res, 1));
  }
  loginFailures.add(1);
  return null;
}

/**
 * The claims of a JWT (not verified: only to learn the caller's own user id), or {}.
 * @param {string} token
 * @returns {any}
 */
export function tokenClaims(token) {
  try {
    return JSON.parse(b64decode(token.split(".")[1], "rawurl", "s"));
  } catch (_) {
    return {};
  }
}

/**
 * The `sub` claim of a JWT, or "".
 * @param {string} token
 */
export function tokenSubject(token) {
  return String(tokenClaims(token).sub || "");
}

/** @type {{ token: string, renewAt: number, userId: string } | null} */
let session = null;
// The plan's client: a user whose one login failed never tries again.
let loginFailed = false;

/**
 * This user's token: logs in at its first task (each user logs in once, as
 * the plan's users do) and again shortly before the token expires (runs
 * shorter than the token's lifetime never renew). Null when the user has
 * none: each such call is a task that could not run, counted in
 * `requests_without_login`. The retrying client also logs in again after a
 * failed login or a 401 (`dropToken`).
 * @param {string} baseUrl
 * @param {string} email
 * @param {string} password
 * @returns {string | null}
 */
export function userToken(baseUrl, email, password) {
  const due = session === null || Date.now() >= session.renewAt;
  if (due && (!loginFailed || retryingLogins())) {
    session = login(baseUrl, email, password);
    loginFailed = session === null;
  }
  if (session === null) {
    requestsWithoutLogin.add(1);
    return null;
  }
  return session.token;
}

/**
 * After a 401: the retrying client forgets its token, so the next task logs
 * in again; the plan's client keeps it (its requests keep failing, visibly).
 */
export function dropToken() {
  if (retryingLogins()) session = null;
}

/**
 * Counts a task that could not run for want of a login (the dashboard's own sign-in).
 */
export function countRequestWithoutLogin() {
  requestsWithoutLogin.add(1);
}

/**
 * The targets every scenario has on its logins: none failed, and no task left undone for want of one.
 * @returns {Target[]}
 */
export function loginTargets() {
  const retrying = retryingLogins();
  return [
    {
      metric: "login_failures",
      expr: "count==0",
      label: retrying ? "Logins that failed after " + (1 + loginRetries()) + " attempts" : "Failed logins",
      target: "0",
      unit: "count",
      kind: "correctness",
      why: retrying
        ? "the retrying client (LOGIN_RETRIES=" + loginRetries() + ")"
        : "the plan's client: one login, no retry",
      action: "read the failed logins' status codes: a 503 means the server shed a login storm",
    },
    {
      metric: "requests_without_login",
      expr: "count==0",
      label: "Tasks not run for want of a login",
      target: "0",
      unit: "count",
      kind: "correctness",
      why: "a user without a token sends nothing",
      action: "see the failed logins",
    },
  ];
}

/**
 * `base` with `more` added (a new object).
 * @param {{ [name: string]: string }} base
 * @param {{ [name: string]: string }} [more]
 * @returns {{ [name: string]: string }}
 */
export function withTags(base, more) {
  /** @type {{ [name: string]: string }} */
  const out = {};
  for (const k in base) out[k] = base[k];
  for (const k in more || {}) out[k] = /** @type {{ [name: string]: string }} */ (more)[k];
  return out;
}

// ---- the dashboard (HTML, cookie session) ------------------------------------

/**
 * `scheme://host[:port]` of a URL, as a browser sends it in `Origin`.
 * @param {string} url
 */
export function originOf(url) {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+/i.exec(url);
  return m ? m[0] : url;
}

/**
 * True when `jar` holds a dashboard session for `baseUrl`: `lg_session`, or
 * `__Host-lg_session` when the server is reached over TLS.
 * @param {import("k6/http").CookieJar} jar
 * @param {string} baseUrl
 */
export function hasDashboardSession(jar, baseUrl) {
  const cookies = jar.cookiesForURL(baseUrl + "/admin/health");
  return Boolean(cookies.lg_session || cookies["__Host-lg_session"]);
}

/**
 * Signs in to the dashboard through its form, as a browser does: GET
 * /admin/login (the form's CSRF token, and its cookie), then POST the form
 * with `Origin`, without following the 303. Cookies live in `jar` (k6 empties
 * a user's own jar at every iteration; this one lasts). Tried as an API login
 * is (`login`): once by default, a 503 with `Retry-After` waited out with
 * `LOGIN_RETRIES`; counted in the same `login_*` metrics. Requests are tagged
 * `name: dashboard_login`. Returns true when a session cookie was set.
 * @param {string} baseUrl
 * @param {string} email
 * @param {string} password
 * @param {import("k6/http").CookieJar} jar
 * @param {number} [attempts] default 1 + LOGIN_RETRIES
 */
export function dashboardSignIn(baseUrl, email, password, jar, attempts) {
  const tries = attempts || 1 + loginRetries();
  const tags = { name: "dashboard_login" };
  for (let attempt = 1; attempt <= tries; attempt++) {
    const form = observe(http.get(baseUrl + "/admin/login", {
      jar: jar,
      tags: tags,
      redirects: 0,
      responseCallback: http.expectedStatuses(200),
    }));
    const m = /name="_csrf"\s+value="([^"]+)"/.exec(typeof form.body === "string" ? form.body : "");
    check(form, {
      "dashboard sign-in: the form with its CSRF token": function (r) {
        return r.status === 200 && m !== null;
      },
    }, tags);
    if (m === null) break;
    const res = observe(http.post(
      baseUrl + "/admin/login",
      { _csrf: m[1], next: "/admin/health", email: email, password: password },
      {
        jar: jar,
        tags: tags,
        redirects: 0,
        headers: { Origin: originOf(baseUrl), "Sec-Fetch-Site": "same-origin" },
        responseCallback: tries > 1 ? http.expectedStatuses(303, 503) : http.expectedStatuses(303),
      },
    ));
    const signedIn = res.status === 303 && hasDashboardSession(jar, baseUrl);
    /** @type {{ [name: string]: (r: import("k6/http").Response) => boolean }} */
    const checks = {};
    checks[
      tries > 1
        ? "dashboard sign-in: 303 to /admin/health with a session cookie, or 503 with Retry-After"
        : "dashboard sign-in: 303 to /admin/health with a session cookie"
    ] = function (r) {
      return (signedIn && /\/admin\/health$/.test(header(r, "Location") || "")) ||
        (tries > 1 && r.status === 503 && header(r, "Retry-After") !== null);
    };
    check(res, checks, tags);
    if (signedIn) return true;
    if (tries === 1 || res.status !== 503 || header(res, "Retry-After") === null) break;
    if (attempt === tries) {
      // The retrying client tries again at its next task: not (yet) a failure.
      loginsGivenUp.add(1);
      return false;
    }
    loginRetryCount.add(1);
    sleep(retryAfter(res, 1));
  }
  loginFailures.add(1);
  return false;
}

// ---- targets (thresholds) --------------------------------------------------

/**
 * One target of the plan as a k6 threshold, with what the report says about it.
 * @typedef {object} Target
 * @property {string} metric k6 metric key, e.g. `http_req_duration{name:progress_update}`
 * @property {string} expr threshold expression, e.g. `p(95)<500`
 * @property {string} label the report's name for it
 * @property {string} target the target in words, e.g. `< 500 ms`
 * @property {"ms" | "%" | "count" | "req/s" | "xp"} unit how to show the actual value
 * @property {"correctness" | "performance"} kind a missed correctness target means NO; a missed performance target CONDITIONAL
 * @property {string} [why] where the number comes from
 * @property {string} [action] what to do when it is missed
 */

/**
 * A latency target on one endpoint (`name` tag), scaled by LATENCY_TARGET_FACTOR.
 * @param {string} endpoint request tag `name`
 * @param {string} stat `med`, `p(95)`, `max` ...
 * @param {number} ms
 * @param {number} factor LATENCY_TARGET_FACTOR
 * @param {string} label
 * @param {string} [why]
 * @returns {Target}
 */
export function latencyTarget(endpoint, stat, ms, factor, label, why) {
  const limit = Math.round(ms * factor * 1000) / 1000;
  return {
    metric: "http_req_duration{name:" + endpoint + "}",
    expr: stat + "<" + limit,
    label: label,
    target: "< " + formatMs(limit),
    unit: "ms",
    kind: "performance",
    why: factor === 1 ? why : (why ? why + "; " : "") + "relaxed ×" + factor + " (LATENCY_TARGET_FACTOR)",
    action: "profile " + endpoint + " under this load (server CPU, pool waits, database locks)",
  };
}

/**
 * A failure-rate target (`http_req_failed`), overall or on one endpoint.
 * @param {string | null} endpoint request tag `name`, or null for every request
 * @param {number} maxRate 0 for "no failures"
 * @param {string} label
 * @param {string} [why]
 * @returns {Target}
 */
export function failureTarget(endpoint, maxRate, label, why) {
  return {
    metric: endpoint ? "http_req_failed{name:" + endpoint + "}" : "http_req_failed",
    expr: maxRate === 0 ? "rate==0" : "rate<" + maxRate,
    label: label,
    target: maxRate === 0 ? "0 %" : "< " + formatPercent(maxRate),
    unit: "%",
    kind: "correctness",
    why: why,
    action: "read the failed responses' status codes and the server log (problem+json request_id)",
  };
}

/**
 * Any other target.
 * @param {Target} target
 * @returns {Target}
 */
export function target(target) {
  return target;
}

/**
 * k6 `thresholds` for the targets, plus `figures`: per-endpoint sub-metrics
 * that carry no target but must appear in the summary (k6 only reports a
 * tagged sub-metric that has a threshold; these always pass).
 * @param {Target[]} targets
 * @param {string[]} endpoints request `name` tags to show figures for
 * @returns {{ [metric: string]: string[] }}
 */
export function thresholdsOf(targets, endpoints) {
  /** @type {{ [metric: string]: string[] }} */
  const thresholds = {};
  const add = function (/** @type {string} */ metric, /** @type {string} */ expr) {
    if (!thresholds[metric]) thresholds[metric] = [];
    if (thresholds[metric].indexOf(expr) < 0) thresholds[metric].push(expr);
  };
  for (let i = 0; i < targets.length; i++) add(targets[i].metric, targets[i].expr);
  for (let i = 0; i < endpoints.length; i++) {
    add("http_reqs{name:" + endpoints[i] + "}", "count>=0");
    add("http_req_duration{name:" + endpoints[i] + "}", "max>=0");
    add("http_req_failed{name:" + endpoints[i] + "}", "rate>=0");
  }
  return thresholds;
}

/** Trend statistics every scenario reports (k6's default lacks p(99)). */
export const SUMMARY_TREND_STATS = ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count"];

// ---- the report -------------------------------------------------------------

/**
 * @param {number} v milliseconds
 */
export function formatMs(v) {
  if (v >= 1000) return (Math.round(v / 10) / 100) + " s";
  if (v >= 100) return Math.round(v) + " ms";
  if (v >= 1) return (Math.round(v * 10) / 10) + " ms";
  return (Math.round(v * 100) / 100) + " ms";
}

/**
 * @param {number} rate 0..1
 */
export function formatPercent(rate) {
  const pct = rate * 100;
  return String(pct >= 10 ? Math.round(pct * 10) / 10 : Math.round(pct * 100) / 100) + " %";
}

/**
 * A whole number with thousands separators.
 * @param {number} n
 */
export function formatCount(n) {
  const sign = n < 0 ? "-" : "";
  const digits = String(Math.round(Math.abs(n)));
  let out = "";
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ",";
    out += digits.charAt(i);
  }
  return sign + out;
}

/**
 * @param {number} n requests per second
 */
export function formatRate(n) {
  return (n >= 100 ? formatCount(n) : String(Math.round(n * 10) / 10)) + " req/s";
}

/**
 * A value of the k6 summary, or null when the metric or statistic is missing.
 * @param {any} data the `handleSummary` argument
 * @param {string} metric
 * @param {string} stat
 * @returns {number | null}
 */
export function metricValue(data, metric, stat) {
  const m = data.metrics[metric];
  if (!m || !m.values || typeof m.values[stat] !== "number") return null;
  return m.values[stat];
}

/**
 * The statistic a threshold expression reads (`p(95)<500` → `p(95)`).
 * @param {string} expr
 */
function statOf(expr) {
  const m = /^\s*([a-z]+(\(\d+(\.\d+)?\))?)\s*(<=|>=|==|!=|<|>)/.exec(expr);
  return m ? m[1] : "value";
}

/**
 * @param {any} data
 * @param {Target} t
 */
function actualOf(data, t) {
  const stat = statOf(t.expr);
  const v = metricValue(data, t.metric, stat);
  if (v === null) return "—";
  if (t.unit === "ms") return formatMs(v);
  if (t.unit === "%") return formatPercent(v);
  if (t.unit === "req/s") return formatRate(v);
  return formatCount(v);
}

/**
 * Whether a target's threshold held (null: k6 did not evaluate it).
 * @param {any} data
 * @param {Target} t
 * @returns {boolean | null}
 */
export function targetOk(data, t) {
  const m = data.metrics[t.metric];
  if (!m || !m.thresholds || !m.thresholds[t.expr]) return null;
  return m.thresholds[t.expr].ok === true;
}

/**
 * A trend or rate target with no sample behind it passes vacuously in k6
 * (`rate==1` holds on no checks at all); the report says so.
 * @param {any} data
 * @param {Target} t
 */
function emptyTarget(data, t) {
  const m = data.metrics[t.metric];
  if (!m || !m.values) return false;
  if (m.type === "trend") return m.values.count === 0;
  if (m.type === "rate") return m.values.passes + m.values.fails === 0;
  return false;
}

/**
 * Checks that failed at least once, from the summary's group tree.
 * @param {any} group
 * @param {{ name: string, passes: number, fails: number }[]} [out]
 */
export function failedChecks(group, out) {
  const list = out || [];
  if (!group) return list;
  const checks = group.checks || [];
  for (let i = 0; i < checks.length; i++) {
    if (checks[i].fails > 0) {
      list.push({ name: checks[i].name, passes: checks[i].passes, fails: checks[i].fails });
    }
  }
  const groups = group.groups || [];
  for (let i = 0; i < groups.length; i++) failedChecks(groups[i], list);
  return list;
}

/**
 * The per-endpoint figures table.
 * @param {any} data
 * @param {string[]} endpoints
 * @param {number} seconds the run's duration
 * @returns {string[]}
 */
export function endpointTable(data, endpoints, seconds) {
  const lines = [
    "| endpoint | requests | req/s | median | p95 | p99 | max | failed |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (let i = 0; i < endpoints.length; i++) {
    const name = endpoints[i];
    const d = "http_req_duration{name:" + name + "}";
    const count = metricValue(data, "http_reqs{name:" + name + "}", "count") || 0;
    const failed = metricValue(data, "http_req_failed{name:" + name + "}", "rate");
    const ms = function (/** @type {string} */ stat) {
      const v = metricValue(data, d, stat);
      return count === 0 || v === null ? "—" : formatMs(v);
    };
    lines.push(
      "| " + name + " | " + formatCount(count) + " | " + formatRate(seconds > 0 ? count / seconds : 0) +
        " | " +
        ms("med") + " | " + ms("p(95)") + " | " + ms("p(99)") + " | " + ms("max") + " | " +
        (count === 0 || failed === null ? "—" : formatPercent(failed)) + " |",
    );
  }
  return lines;
}

/**
 * What a scenario tells the report.
 * @typedef {object} ReportSpec
 * @property {string} scenario file name without `.js`, e.g. `progress_update`
 * @property {string} title e.g. `Scenario 1: Progress update storm`
 * @property {string} users e.g. `1,000`
 * @property {string} spawnRate e.g. `50 users/s`
 * @property {string} host
 * @property {string} environment
 * @property {string} reportDir
 * @property {string[][]} parameters rows of [parameter, this run, the plan's]
 * @property {string[]} reduced how this run is smaller or laxer than the plan's (caps the verdict at CONDITIONAL)
 * @property {string[]} endpoints request `name` tags, in table order
 * @property {Target[]} targets
 * @property {(data: any, seconds: number) => string[]} [figures] extra lines for the scenario's section
 * @property {(data: any) => { positive: string[], issues: string[], actions: string[] }} [observations]
 */

/**
 * The recommendation from the targets: NO when a correctness target was
 * missed; CONDITIONAL when only performance targets were missed, or all were
 * met but the run was smaller or laxer than the plan's, or an endpoint got no
 * requests; YES when every target was met at the plan's scale.
 * @param {any} data
 * @param {ReportSpec} spec
 */
export function verdictOf(data, spec) {
  const missed = spec.targets.filter(function (t) {
    return targetOk(data, t) === false;
  });
  const missedCorrectness = missed.filter(function (t) {
    return t.kind === "correctness";
  });
  const empty = spec.targets.filter(function (t) {
    return emptyTarget(data, t);
  });
  if (missedCorrectness.length) {
    return {
      verdict: "NO",
      reason: "missed " + missedCorrectness.length + " correctness target(s): " +
        missedCorrectness.map(function (t) {
          return t.label;
        }).join("; "),
      missed: missed,
      empty: empty,
    };
  }
  if (missed.length) {
    return {
      verdict: "CONDITIONAL",
      reason: "correct under load, but missed " + missed.length + " performance target(s): " +
        missed.map(function (t) {
          return t.label;
        }).join("; "),
      missed: missed,
      empty: empty,
    };
  }
  if (spec.reduced.length || empty.length) {
    const why = spec.reduced.slice();
    if (empty.length) {
      why.push(
        "nothing measured for: " + empty.map(function (t) {
          return t.label;
        }).join("; "),
      );
    }
    return {
      verdict: "CONDITIONAL",
      reason: "every target met, but not at the plan's scale (" + why.join("; ") + ")",
      missed: missed,
      empty: empty,
    };
  }
  return {
    verdict: "YES",
    reason: "every target met at the plan's parameters",
    missed: missed,
    empty: empty,
  };
}

/**
 * `20261129T103650Z`
 * @param {Date} date
 */
export function utcStamp(date) {
  return date.toISOString().replace(/\.\d+Z$/, "Z").replace(/[-:]/g, "");
}

/**
 * The Markdown report in the plan's "Load Testing Report" template.
 * @param {any} data the `handleSummary` argument
 * @param {ReportSpec} spec
 * @param {Date} now
 * @param {string} jsonName the raw JSON's file name
 */
export function renderReport(data, spec, now, jsonName) {
  const seconds = (data.state && data.state.testRunDurationMs ? data.state.testRunDurationMs : 0) / 1000;
  const v = verdictOf(data, spec);
  const lines = [
    "# Load Testing Report",
    "",
    "**Date:** " + now.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC"),
    "**Duration:** " + formatSeconds(seconds),
    "**Environment:** " + spec.environment,
    "**Users:** " + spec.users,
    "**Spawn Rate:** " + spec.spawnRate,
    "**Host:** " + spec.host,
    "",
    "## " + spec.title,
    "",
    "| parameter | this run | plan |",
    "| --- | --- | --- |",
  ];
  for (let i = 0; i < spec.parameters.length; i++) {
    lines.push("| " + spec.parameters[i].join(" | ") + " |");
  }
  const total = metricValue(data, "http_reqs", "count") || 0;
  lines.push(
    "",
    "- Total requests: " + formatCount(total) + " (" + formatRate(seconds > 0 ? total / seconds : 0) + ")",
    "- Median response time: " + formatMs(metricValue(data, "http_req_duration", "med") || 0) +
      "; 95th percentile: " + formatMs(metricValue(data, "http_req_duration", "p(95)") || 0) +
      "; 99th percentile: " + formatMs(metricValue(data, "http_req_duration", "p(99)") || 0),
    "- Failure rate: " + formatPercent(metricValue(data, "http_req_failed", "rate") || 0) +
      " (responses other than the expected status)",
  );
  if (spec.figures) {
    const extra = spec.figures(data, seconds);
    for (let i = 0; i < extra.length; i++) lines.push(extra[i]);
  }
  if (spec.endpoints.length) {
    lines.push("");
    const table = endpointTable(data, spec.endpoints, seconds);
    for (let i = 0; i < table.length; i++) lines.push(table[i]);
  }

  lines.push(
    "",
    "## Performance Metrics",
    "",
    "| Metric | Target | Actual | Status |",
    "| --- | --- | --- | --- |",
  );
  for (let i = 0; i < spec.targets.length; i++) {
    const t = spec.targets[i];
    const ok = targetOk(data, t);
    const mark = ok === null ? "—" : ok ? "✅" : "❌";
    const note = emptyTarget(data, t) ? " (no samples)" : "";
    lines.push(
      "| " + t.label + " | " + t.target + (t.why ? " (" + t.why + ")" : "") + " | " + actualOf(data, t) +
        note +
        " | " + mark + " |",
    );
  }

  const positive = [];
  const issues = [];
  const actions = [];
  for (let i = 0; i < spec.targets.length; i++) {
    const t = spec.targets[i];
    const ok = targetOk(data, t);
    if (ok === true && !emptyTarget(data, t)) {
      positive.push(t.label + ": " + actualOf(data, t) + " (target " + t.target + ")");
    }
    if (ok === false) {
      issues.push(t.label + ": " + actualOf(data, t) + ", target " + t.target);
      if (t.action) actions.push(t.label + ": " + t.action);
    }
  }
  for (let i = 0; i < v.empty.length; i++) {
    issues.push(v.empty[i].label + ": no samples (nothing was measured)");
  }
  const failed = failedChecks(data.root_group);
  for (let i = 0; i < failed.length; i++) {
    issues.push(
      'check "' + failed[i].name + '" failed ' + formatCount(failed[i].fails) + " of " +
        formatCount(failed[i].passes + failed[i].fails) + " times",
    );
  }
  const unexpected = metricValue(data, "rate_limited_unexpected", "count");
  if (unexpected) {
    actions.push(
      "the server rate-limited the load generator (" + formatCount(unexpected) + " × 429): start it with " +
        "RATE_LIMIT_EXEMPT=<load generator>/32 or RATE_LIMIT_PER_MINUTE=0 (the security scenario excepted)",
    );
  }
  const retries = metricValue(data, "login_retries", "count");
  if (retries) issues.push(formatCount(retries) + " logins were told to retry (503 with Retry-After)");
  const givenUp = metricValue(data, "logins_given_up", "count");
  if (givenUp) {
    issues.push(
      formatCount(givenUp) + " logins were still told to retry after " + (1 + loginRetries()) + " attempts",
    );
  }
  const without = metricValue(data, "requests_without_login", "count");
  if (without) issues.push(formatCount(without) + " tasks were not run: their user had no token");
  if (spec.observations) {
    const o = spec.observations(data);
    for (let i = 0; i < o.positive.length; i++) positive.push(o.positive[i]);
    for (let i = 0; i < o.issues.length; i++) issues.push(o.issues[i]);
    for (let i = 0; i < o.actions.length; i++) actions.push(o.actions[i]);
  }
  if (spec.reduced.length) {
    actions.push("run at the plan's parameters before deciding: " + spec.reduced.join("; "));
  }
  const bullet = function (/** @type {string[]} */ items, /** @type {string} */ prefix) {
    if (!items.length) lines.push(prefix + "none");
    for (let i = 0; i < items.length; i++) lines.push(prefix + items[i]);
  };
  lines.push("", "## Observations", "", "### Positive", "");
  bullet(positive, "- ");
  lines.push("", "### Issues", "");
  bullet(issues, "- ");
  lines.push("", "### Action Items", "");
  bullet(actions, "- [ ] ");
  lines.push(
    "",
    "## Recommendation",
    "",
    "**Ready for production: " + v.verdict + "** — " + v.reason + ".",
    "",
    "---",
    "",
    "Generated by loadtest/" + spec.scenario + ".js (k6 handleSummary); raw figures: " + jsonName + ".",
    "",
  );
  return lines.join("\n");
}

/**
 * The scenario's `handleSummary`: writes `<REPORT_DIR>/<scenario>-<UTC stamp>.md`
 * and `.json` (the directory must exist: k6 does not create it) and prints a
 * short summary on stdout.
 * @param {ReportSpec} spec
 */
export function summaryHandler(spec) {
  return function handleSummary(/** @type {any} */ data) {
    const now = new Date();
    const base = spec.reportDir + "/" + spec.scenario + "-" + utcStamp(now);
    const jsonName = base.replace(/^.*\//, "") + ".json";
    const v = verdictOf(data, spec);
    const seconds = (data.state && data.state.testRunDurationMs ? data.state.testRunDurationMs : 0) / 1000;
    const total = metricValue(data, "http_reqs", "count") || 0;
    const passed = spec.targets.filter(function (t) {
      return targetOk(data, t) === true;
    }).length;
    const stdout = [
      "",
      spec.scenario + ": " + v.verdict + " — " + v.reason,
      "  " + formatCount(total) + " requests in " + formatSeconds(seconds) + " (" +
      formatRate(seconds > 0 ? total / seconds : 0) + "), median " +
      formatMs(metricValue(data, "http_req_duration", "med") || 0) + ", p95 " +
      formatMs(metricValue(data, "http_req_duration", "p(95)") || 0) + ", failed " +
      formatPercent(metricValue(data, "http_req_failed", "rate") || 0) + "; targets met " + passed + "/" +
      spec.targets.length,
    ];
    for (let i = 0; i < v.missed.length; i++) {
      stdout.push(
        "  ❌ " + v.missed[i].label + ": " + actualOf(data, v.missed[i]) + ", target " + v.missed[i].target,
      );
    }
    stdout.push("  report: " + base + ".md (raw: " + base + ".json)", "");
    /** @type {{ [path: string]: string }} */
    const out = { stdout: stdout.join("\n") };
    out[base + ".md"] = renderReport(data, spec, now, jsonName);
    out[base + ".json"] = JSON.stringify(data, null, 2);
    return out;
  };
}

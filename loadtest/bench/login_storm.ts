/**
 * Login storm benchmark: `deno task bench:login-storm [--shape all] [--after 30] [--background 100]`.
 * The load plan's three scenarios as its own clients run them (its Locust
 * users): users spawn at the plan's rate, each logs in ONCE as the same admin
 * account, never retries (a user without a token dies), then does the
 * scenario's work with the scenario's waits:
 *   scenario1  1,000 users at 50/s; update 10 : status 3 : check-now 1 on students 1..10,000, waits 1–3 s
 *   scenario2    500 users at 100/s; updates on students 1..100 in PLAYER, XP 10–50, waits 0.1–0.5 s
 *   scenario3    100 admins at 20/s; status 5 : metrics 3 : violations 2 : check-now 1, waits 30–60 s
 *   distinct   1,000 seeded students at 50/s, each its own account (a derivation each)
 * Meanwhile another client calls status and update at `--background` per
 * second (open loop), so every shape has other endpoints to time. Each shape
 * runs on a fresh seeded cluster and server, until every login is answered
 * and `--after` seconds more. Targets (the SPEC): 0 failed logins in the plan's
 * shapes, all users of scenario 1 logged in within 30 s of the last spawn,
 * other endpoints p95 < 100 ms during the storm and < 50 ms after, every login
 * of the distinct storm answered (200, or 503 only past the queue bound),
 * server peak RSS < 150 MB.
 */
import { z } from "zod";
import { argsOrExit, positiveInt } from "../../lib/args.ts";
import { SEEDED_ACCOUNTS } from "../../tests/support/seeded_cluster.ts";
import { describeParams, hashPassword } from "../../lib/password.ts";
import { benchServer, memoryMb, percentile } from "./_setup.ts";

const SHAPE_NAMES = ["scenario1", "scenario2", "scenario3", "distinct"] as const;
type ShapeName = typeof SHAPE_NAMES[number];

const args = argsOrExit({
  name: "bench:login-storm",
  summary:
    "The plan's login storms (one account, each user logging in once, never retrying) and a storm of " +
    "1,000 distinct accounts: failed logins, time to all logged in, other endpoints' latency, peak RSS.",
  options: {
    shape: { type: "string", value: "NAME", help: `${SHAPE_NAMES.join(", ")} or all (default all)` },
    after: {
      type: "string",
      value: "S",
      help: "seconds to keep going once every login is answered (default 30)",
    },
    background: { type: "string", value: "R", help: "other requests per second meanwhile (default 100)" },
    users: { type: "string", value: "N", help: "fewer users than the shape's (a quick look; not the plan)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    shape: z.enum([...SHAPE_NAMES, "all"]).default("all"),
    after: positiveInt().default(30),
    background: positiveInt().default(100),
    users: positiveInt().optional(),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb). Each shape takes one to two minutes."],
});

const STUDENTS = 10_000;
// The run ends this long after the last spawn whatever happens (a stuck login is reported as such).
const HARD_STOP_S = 180;

interface Shape {
  name: ShapeName;
  title: string;
  users: number;
  spawnPerS: number;
  /** Who user i logs in as. */
  account: (i: number) => { email: string; password: string };
  /** One task of a logged-in user (none: the user only logs in). */
  task?: (api: Api, token: string) => Promise<void>;
  waitS: [number, number];
}

type Kind = "update" | "status" | "check-now" | "metrics" | "violations";
interface Sample {
  kind: Kind;
  /** Sent at, ms since the shape's start. */
  at: number;
  ms: number;
  status: number;
  background: boolean;
}

const rand = (min: number, max: number) => min + Math.random() * (max - min);
const randInt = (min: number, max: number) => Math.floor(rand(min, max + 1));
const pick = <T>(items: [T, number][]): T => {
  let r = Math.random() * items.reduce((a, [, w]) => a + w, 0);
  for (const [item, w] of items) if ((r -= w) < 0) return item;
  return items[items.length - 1][0];
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const SPECIALIZATIONS = ["PLAYER", "COACH", "INTERNSHIP"];
const admin = () => ({ email: SEEDED_ACCOUNTS.adminEmail, password: SEEDED_ACCOUNTS.adminPassword });

/** Timed calls to one server, recorded into `samples`. */
class Api {
  readonly samples: Sample[] = [];
  constructor(readonly base: string, readonly started: number) {}

  /** One call of `kind` with `token`; an update sends `award` (default: a random one of scenario 1). */
  async call(kind: Kind, token: string, background: boolean, award?: unknown): Promise<void> {
    const at = performance.now();
    const auth = { Authorization: `Bearer ${token}` };
    const post = (path: string, body?: unknown) =>
      fetch(`${this.base}${path}`, {
        method: "POST",
        headers: body === undefined ? auth : { ...auth, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const get = (path: string) => fetch(`${this.base}${path}`, { headers: auth });
    let status = 0;
    try {
      const res = kind === "update"
        ? await post("/api/v1/specializations/progress/update", award ?? defaultAward())
        : kind === "status"
        ? await get("/api/v1/health/status")
        : kind === "check-now"
        ? await post("/api/v1/health/check-now")
        : kind === "metrics"
        ? await get("/api/v1/health/metrics?window=24h")
        : await get("/api/v1/health/violations?limit=50");
      await res.arrayBuffer();
      status = res.status;
    } catch {
      status = 0; // no answer (connection refused or reset)
    }
    this.samples.push({ kind, at: at - this.started, ms: performance.now() - at, status, background });
  }
}

const defaultAward = () => ({
  student_id: randInt(1, STUDENTS),
  specialization_id: SPECIALIZATIONS[randInt(0, 2)],
  xp_change: randInt(10, 200),
});

const SHAPES: Record<ShapeName, Shape> = {
  scenario1: {
    name: "scenario1",
    title: "scenario 1: 1,000 users at 50/s, one admin account",
    users: 1000,
    spawnPerS: 50,
    account: admin,
    task: (api, token) =>
      api.call(pick<Kind>([["update", 10], ["status", 3], ["check-now", 1]]), token, false),
    waitS: [1, 3],
  },
  scenario2: {
    name: "scenario2",
    title: "scenario 2: 500 users at 100/s, one admin account, students 1..100",
    users: 500,
    spawnPerS: 100,
    account: admin,
    task: (api, token) =>
      api.call("update", token, false, {
        student_id: randInt(1, 100),
        specialization_id: "PLAYER",
        xp_change: randInt(10, 50),
      }),
    waitS: [0.1, 0.5],
  },
  scenario3: {
    name: "scenario3",
    title: "scenario 3: 100 admins at 20/s, one admin account",
    users: 100,
    spawnPerS: 20,
    account: admin,
    task: (api, token) =>
      api.call(
        pick<Kind>([["status", 5], ["metrics", 3], ["violations", 2], ["check-now", 1]]),
        token,
        false,
      ),
    waitS: [30, 60],
  },
  distinct: {
    name: "distinct",
    title: "1,000 distinct accounts (seeded students) at 50/s",
    users: 1000,
    spawnPerS: 50,
    account: (i) => ({
      email: `student${i + 1}@academy.example.com`,
      password: SEEDED_ACCOUNTS.studentPassword,
    }),
    waitS: [0, 0],
  },
};

interface Login {
  at: number;
  ms: number;
  status: number;
  retryAfter: boolean;
}

/** The password derivations the server ran and shed, from its /metrics (loopback). */
async function serverCounters(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    derived: value(/^levelguard_password_checks_total\{answer="derived"\} (\S+)$/m),
    kept: value(/^levelguard_password_checks_total\{answer="kept"\} (\S+)$/m),
    joined: value(/^levelguard_password_checks_total\{answer="joined"\} (\S+)$/m),
    shed: value(/^levelguard_logins_shed_total (\S+)$/m),
  };
}

/** p50/p95/p99 in ms, or dashes. */
function quantiles(xs: number[]): string {
  if (xs.length === 0) return "– / – / –";
  return [0.5, 0.95, 0.99].map((p) => percentile(xs, p).toFixed(1)).join(" / ");
}

function statuses(xs: { status: number }[]): string {
  const groups = Object.groupBy(xs, (x) => String(x.status));
  return Object.entries(groups).map(([s, v]) => `${s === "0" ? "no answer" : s}: ${v!.length}`).join(", ");
}

/** Runs one shape on a fresh server; prints its details and returns its summary row. */
async function runShape(shape: Shape): Promise<string> {
  const users = Math.min(args.users ?? shape.users, shape.users);
  const bench = await benchServer({ students: STUDENTS });
  try {
    const idleMb = memoryMb(bench.server.pid).rss;
    const started = performance.now();
    const api = new Api(bench.base, started);
    const logins: Login[] = [];
    const spawnEvery = 1000 / shape.spawnPerS;
    const lastSpawn = (users - 1) * spawnEvery;
    let stopAt = lastSpawn + HARD_STOP_S * 1000;
    let allAnsweredAt: number | null = null;
    const now = () => performance.now() - started;

    const user = async (i: number) => {
      await sleep(i * spawnEvery - now());
      const at = now();
      let token: string | null = null;
      let status = 0;
      let retryAfter = false;
      try {
        const res = await fetch(`${bench.base}/api/v1/auth/login`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(shape.account(i)),
        });
        status = res.status;
        retryAfter = res.headers.has("retry-after");
        const body = await res.json().catch(() => ({}));
        if (res.status === 200 && typeof body.access_token === "string") token = body.access_token;
      } catch {
        status = 0;
      }
      logins.push({ at, ms: now() - at, status, retryAfter });
      if (logins.length === users) {
        allAnsweredAt = now();
        stopAt = Math.min(stopAt, allAnsweredAt + args.after * 1000);
      }
      // The plan's user: no token, no retry; it dies.
      if (!token || !shape.task) return;
      while (now() < stopAt) {
        await shape.task(api, token);
        await sleep(rand(shape.waitS[0], shape.waitS[1]) * 1000);
      }
    };

    // The other client: status and update alternately, on schedule whatever the answers take.
    const background = async () => {
      const pending: Promise<void>[] = [];
      for (let n = 0; now() < stopAt; n++) {
        await sleep(n * (1000 / args.background) - now());
        if (now() >= stopAt) break;
        pending.push(
          api.call(n % 2 === 0 ? "status" : "update", bench.authorization.slice("Bearer ".length), true),
        );
      }
      await Promise.all(pending);
    };

    // The server's RSS every 250 ms: when the peak came (during the storm or after it).
    const rss: { at: number; mb: number }[] = [];
    const sampler = setInterval(() => rss.push({ at: now(), mb: memoryMb(bench.server.pid).rss }), 250);
    try {
      await Promise.all([...Array.from({ length: users }, (_, i) => user(i)), background()]);
    } finally {
      clearInterval(sampler);
    }
    const mem = memoryMb(bench.server.pid);
    const rssMax = (xs: { mb: number }[]) => xs.length ? Math.max(...xs.map((x) => x.mb)).toFixed(0) : "–";
    const counters = await serverCounters(bench.base);

    // "During": sent before every login was answered; "after": sent later.
    const stormEnd = allAnsweredAt ?? Infinity;
    const others = api.samples.filter((s) => s.kind !== "check-now");
    const during = others.filter((s) => s.at < stormEnd);
    const after = others.filter((s) => s.at >= stormEnd);
    const ok = logins.filter((l) => l.status === 200);
    const failed = logins.length - ok.length;
    const lastOk = ok.length ? Math.max(...ok.map((l) => l.at + l.ms)) : NaN;
    const firstSent = Math.min(...logins.map((l) => l.at));
    const allIn = failed === 0 ? (lastOk - lastSpawn) / 1000 : NaN;
    const throughput = ok.length / ((lastOk - firstSent) / 1000);
    const refused = logins.filter((l) => l.status === 503);

    const rows = [
      ["logins", logins],
      ["other endpoints, during the storm", during],
      ["other endpoints, after it", after],
      ["  of which the users' own", others.filter((s) => !s.background)],
      ["  of which the background client's", others.filter((s) => s.background)],
      ["check-now (its own target: < 10 s)", api.samples.filter((s) => s.kind === "check-now")],
    ] as const;
    console.log(
      `\n### ${shape.title}${users < shape.users ? ` (reduced to ${users} users)` : ""}\n\n` +
        "| requests | n | statuses | p50 / p95 / p99 ms |\n|---|---:|---|---|\n" +
        rows.map(([name, xs]) =>
          `| ${name} | ${xs.length} | ${statuses(xs)} | ${quantiles(xs.map((x) => x.ms))} |`
        )
          .join("\n") +
        `\n\nLogins: ${ok.length} of ${logins.length} answered 200, ${failed} failed` +
        (refused.length
          ? ` (${refused.length} × 503, all with Retry-After: ${refused.every((l) => l.retryAfter)})`
          : "") +
        `; last spawn at ${(lastSpawn / 1000).toFixed(1)} s, ` +
        (failed === 0 ? `all logged in ${allIn.toFixed(1)} s after it` : "not all logged in") +
        `; ${
          throughput.toFixed(1)
        } logins/s. Server: ${counters.derived} derivations, ${counters.kept} answered ` +
        `from a kept check, ${counters.joined} joined one in flight, ${counters.shed} shed; RSS peak ` +
        `${mem.peak.toFixed(0)} MB (${idleMb.toFixed(0)} MB before the storm; sampled: ` +
        `${rssMax(rss.filter((r) => r.at < stormEnd))} MB during it, ` +
        `${rssMax(rss.filter((r) => r.at >= stormEnd))} MB after it).`,
    );
    return `| ${shape.name} | ${logins.length} | ${failed} | ${
      Number.isNaN(allIn) ? "–" : allIn.toFixed(1)
    } | ` +
      `${throughput.toFixed(1)} | ${quantiles(during.map((x) => x.ms))} | ${
        quantiles(after.map((x) => x.ms))
      } | ` +
      `${counters.derived} | ${mem.peak.toFixed(0)} |`;
  } finally {
    await bench.stop();
  }
}

// The KDF's cost, measured alone before any load: five derivations one after another.
const kdfMs: number[] = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  await hashPassword("a password of a usual length");
  kdfMs.push(performance.now() - t);
}
console.log(
  `Login storms: ${STUDENTS.toLocaleString("en")} students, ${navigator.hardwareConcurrency} cores, ` +
    `background ${args.background} requests/s, ${args.after} s after the last login. ` +
    `KDF ${describeParams()}: ${percentile(kdfMs, 0.5).toFixed(0)} ms per derivation (median of 5, ` +
    `${Math.min(...kdfMs).toFixed(0)}–${Math.max(...kdfMs).toFixed(0)}).`,
);
const summary: string[] = [];
for (const name of args.shape === "all" ? SHAPE_NAMES : [args.shape]) {
  summary.push(await runShape(SHAPES[name]));
}
console.log(
  "\n| shape | logins | failed | all logged in, s after the last spawn | logins/s | other endpoints during " +
    "(p50 / p95 / p99 ms) | after | derivations | server RSS peak MB |\n" +
    "|---|---:|---:|---:|---:|---|---|---:|---:|\n" + summary.join("\n"),
);

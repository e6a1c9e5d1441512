/**
 * Login storm benchmark: `deno task bench:login-storm [--logins 1000] [--seconds 20] [--background 100]`.
 * The plan's scenario 1 ramp: 1,000 users log in within 20 s (open loop, one
 * every 20 ms) while other clients keep calling the API (status reads and
 * progress updates, `--background` per second). Targets: the other endpoints
 * keep p95 under 50 ms; every login succeeds or is told to retry (503 with
 * Retry-After); the server's peak RSS stays under 150 MB.
 */
import { z } from "zod";
import { argsOrExit, positiveInt } from "../../lib/args.ts";
import { SEEDED_ACCOUNTS } from "../../tests/support/seeded_cluster.ts";
import { benchServer, memoryMb, percentile } from "./_setup.ts";

const args = argsOrExit({
  name: "bench:login-storm",
  summary:
    "1,000 logins within 20 s while other endpoints are called: their latency, and every login's outcome.",
  options: {
    logins: { type: "string", value: "N", help: "logins (default 1000)" },
    seconds: { type: "string", value: "S", help: "spread over this many seconds (default 20)" },
    background: { type: "string", value: "R", help: "other requests per second meanwhile (default 100)" },
  },
  schema: z.object({
    _: z.array(z.string()),
    logins: positiveInt().default(1000),
    seconds: positiveInt().default(20),
    background: positiveInt().default(100),
  }),
  notes: ["Needs PostgreSQL's binaries (initdb)."],
});

const STUDENTS = 10_000;
const bench = await benchServer({ students: STUDENTS });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
try {
  const logins: { status: number; ms: number; retryAfter: string | null }[] = [];
  const others: { kind: string; status: number; ms: number }[] = [];
  const started = performance.now();
  const end = started + args.seconds * 1000;

  const login = async (i: number) => {
    const t = performance.now();
    const res = await fetch(`${bench.base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        email: `student${1 + (i % STUDENTS)}@academy.example.com`,
        password: SEEDED_ACCOUNTS.studentPassword,
      }),
    });
    await res.arrayBuffer();
    logins.push({
      status: res.status,
      ms: performance.now() - t,
      retryAfter: res.headers.get("retry-after"),
    });
  };
  const other = async (i: number) => {
    const t = performance.now();
    const update = i % 2 === 0;
    const res = update
      ? await fetch(`${bench.base}/api/v1/specializations/progress/update`, {
        method: "POST",
        headers: { Authorization: bench.authorization, "Content-Type": "application/json" },
        body: JSON.stringify({
          student_id: 1 + (i * 7919) % STUDENTS,
          specialization_id: "PLAYER",
          xp_change: 10,
        }),
      })
      : await fetch(`${bench.base}/api/v1/health/status`, {
        headers: { Authorization: bench.authorization },
      });
    await res.arrayBuffer();
    others.push({
      kind: update ? "progress update" : "status",
      status: res.status,
      ms: performance.now() - t,
    });
  };

  // Open loop: requests leave on schedule, whatever the answers take.
  const pending: Promise<void>[] = [];
  let nextLogin = 0;
  let nextOther = 0;
  while (performance.now() < end || nextLogin < args.logins) {
    const elapsed = performance.now() - started;
    while (nextLogin < args.logins && nextLogin * (args.seconds * 1000 / args.logins) <= elapsed) {
      pending.push(login(nextLogin++));
    }
    while (performance.now() < end && nextOther * (1000 / args.background) <= elapsed) {
      pending.push(other(nextOther++));
    }
    await sleep(2);
  }
  await Promise.all(pending);
  const mem = memoryMb(bench.server.pid);

  const byStatus = (xs: { status: number }[]) =>
    Object.entries(Object.groupBy(xs, (x) => String(x.status))).map(([s, v]) => `${s}: ${v!.length}`).join(
      ", ",
    );
  const row = (name: string, xs: { ms: number; status: number }[]) =>
    `| ${name} | ${xs.length} | ${byStatus(xs)} | ${percentile(xs.map((x) => x.ms), 0.5).toFixed(1)} | ${
      percentile(xs.map((x) => x.ms), 0.95).toFixed(1)
    } | ${percentile(xs.map((x) => x.ms), 0.99).toFixed(1)} |`;
  const refused = logins.filter((l) => l.status === 503);
  console.log(
    `Login storm: ${args.logins} logins over ${args.seconds} s, ${args.background} other requests/s, ` +
      `${STUDENTS.toLocaleString("en")} students, ${navigator.hardwareConcurrency} cores\n\n` +
      "| requests | n | statuses | p50 ms | p95 ms | p99 ms |\n|---|---:|---|---:|---:|---:|\n" +
      [
        row("logins", logins),
        row("progress updates (meanwhile)", others.filter((o) => o.kind === "progress update")),
        row("status reads (meanwhile)", others.filter((o) => o.kind === "status")),
        row("all other endpoints", others),
      ].join("\n") +
      `\n\nLogins told to retry: ${refused.length} (all with Retry-After: ${
        refused.every((l) => l.retryAfter !== null)
      }); other statuses than 200/503: ${
        logins.filter((l) => l.status !== 200 && l.status !== 503).length
      }. ` +
      `Server RSS ${mem.rss.toFixed(0)} MB, peak ${mem.peak.toFixed(0)} MB.`,
  );
} finally {
  await bench.stop();
}

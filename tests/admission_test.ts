/**
 * The gate in front of password derivations (lib/admission.ts) and its
 * adaptive limit (lib/adaptive_limit.ts); then logins through it: a storm of
 * one account, and a login queued behind a full gate.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { AdaptiveLimit, type ConcurrencyLimit } from "../lib/adaptive_limit.ts";
import { Admission } from "../lib/admission.ts";
import { Unavailable } from "../lib/errors.ts";
import { hashPassword } from "../lib/password.ts";
import { until, withTestApp } from "./_fixture.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("an admission gate runs at most `concurrency` jobs at once, in arrival order", async () => {
  const gate = new Admission({ what: "jobs", concurrency: 2, maxWaitMs: 10_000, expectedMs: 10 });
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(Array.from({ length: 8 }, (_, i) =>
    gate.run(async () => {
      running++;
      peak = Math.max(peak, running);
      order.push(i);
      await sleep(15);
      running--;
    })));
  assertEquals(peak, 2);
  assertEquals(order, [0, 1, 2, 3, 4, 5, 6, 7]);
  assertEquals([gate.running, gate.queued, gate.shed], [0, 0, 0]);
});

Deno.test("a job whose wait would pass maxWaitMs is refused at once with how long to wait", async () => {
  const gate = new Admission({ what: "sign-ins", concurrency: 1, maxWaitMs: 100, expectedMs: 40 });
  const slow = () => sleep(40);
  const first = [gate.run(slow), gate.run(slow), gate.run(slow)]; // 1 running, 2 waiting (80 ms)
  const err = await assertRejects(() => gate.run(slow), Unavailable); // would wait 120 ms
  assertEquals(err.message, "Too many sign-ins at once; retry in 1 s");
  assertEquals(err.retryAfterSeconds, 1);
  await Promise.all(first);
  assertEquals(gate.shed, 1);
  await gate.run(slow); // the queue drained: admitted again
});

Deno.test("a gate whose limit rises starts its waiting jobs at once; one that falls lets running jobs end", async () => {
  let raise = () => {};
  const busy: boolean[] = [];
  const limit: ConcurrencyLimit & { current: number } = {
    current: 1,
    busy: (b) => busy.push(b),
    onRaise: (fn) => raise = fn,
  };
  const gate = new Admission({ what: "jobs", concurrency: limit, maxWaitMs: 60_000, expectedMs: 10 });
  const releases: (() => void)[] = [];
  const job = () => new Promise<void>((r) => releases.push(r));
  const runs = [gate.run(job), gate.run(job), gate.run(job)];
  await until("one job runs", () => releases.length === 1);
  assertEquals([gate.running, gate.queued], [1, 2]);
  limit.current = 3;
  raise();
  await until("all three run", () => releases.length === 3);
  assertEquals([gate.running, gate.queued], [3, 0]);
  limit.current = 1;
  const fourth = gate.run(job);
  releases.shift()!();
  releases.shift()!();
  await until("two ended", () => gate.running === 1);
  assertEquals([gate.queued, releases.length], [1, 1], "the fourth waits: one slot, still taken");
  releases.shift()!();
  await until("the fourth runs", () => releases.length === 1);
  releases.shift()!();
  await Promise.all([...runs, fourth]);
  assertEquals([gate.running, gate.queued], [0, 0]);
  assertEquals(
    [busy[0], busy.at(-1)],
    [true, false],
    "the limit watches the loop only while the gate has work",
  );
});

Deno.test("the adaptive limit: every core while the loop is on time, one fewer when it is late, never below min", () => {
  let raised = 0;
  const limit = new AdaptiveLimit({ min: 1, max: 3, highLagMs: 10, lowLagMs: 5, windowMs: 250 });
  limit.onRaise(() => raised++);
  assertEquals(limit.current, 3, "an idle service lends every core");
  limit.observe(12, 0);
  assertEquals(limit.current, 2, "a late timer takes a slot at once");
  limit.observe(30, 100);
  assertEquals(limit.current, 2, "one change per window");
  limit.observe(30, 260);
  assertEquals(limit.current, 1);
  limit.observe(50, 600);
  assertEquals(limit.current, 1, "never below min");
  // A window with a timer 6 ms late is not quiet: nothing given back.
  limit.observe(6, 700);
  limit.observe(1, 860);
  assertEquals(limit.current, 1);
  // A quiet window gives one back and wakes the gate.
  limit.observe(1, 1000);
  limit.observe(1, 1120);
  assertEquals([limit.current, raised], [2, 1]);
  for (let t = 1200; t < 3000; t += 10) limit.observe(0.5, t);
  assertEquals([limit.current, raised], [3, 2], "never above max");
});

const login = (
  app: { request: (path: string, init: RequestInit) => Response | Promise<Response> },
  email: string,
) =>
  app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password: "storm-password" }),
  });

Deno.test("a login storm of one account: every login is answered 200, for one derivation", () =>
  withTestApp({ env: { PASSWORD_HASH_CONCURRENCY: "1" } }, async ({ db, app, deps }) => {
    await db.sql`INSERT INTO users (email, hashed_password, role) VALUES
      ('storm@example.test', ${await hashPassword("storm-password")}, 'ADMIN')`;
    const responses = await Promise.all(Array.from({ length: 40 }, () => login(app, "storm@example.test")));
    const statuses = responses.map((r) => r.status);
    assert(statuses.every((s) => s === 200), statuses.join());
    for (const res of responses) assertEquals(typeof (await res.json()).access_token, "string");
    assertEquals(deps.passwordChecks.verified.derivations, 1);
    assertEquals(deps.passwords.shed, 0);
  }));

Deno.test("a login queued behind a full gate is answered, not dropped (the default bound waits ~30 s, not 3)", () =>
  // One slot, the default PASSWORD_QUEUE_MAX_WAIT_MS.
  withTestApp({ env: { PASSWORD_HASH_CONCURRENCY: "1" } }, async ({ db, app, deps }) => {
    await db.sql`INSERT INTO users (email, hashed_password, role) VALUES
      ('queued@example.test', ${await hashPassword("storm-password")}, 'ADMIN')`;
    // The slot is taken and 69 derivations wait (~17 s by the gate's first estimate of 250 ms each).
    let release = () => {};
    const holder = deps.passwords.run(() => new Promise<void>((r) => release = r));
    const waiting = Array.from({ length: 69 }, () => deps.passwords.run(() => Promise.resolve()));
    const pending = login(app, "queued@example.test");
    await until("the login waits in the queue", () => deps.passwords.queued === 70);
    release();
    const res = await pending;
    assertEquals(res.status, 200, await res.clone().text());
    assertEquals(typeof (await res.json()).access_token, "string");
    await Promise.all([holder, ...waiting]);
    assertEquals(deps.passwords.shed, 0);
  }));

import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { Admission } from "../lib/admission.ts";
import { Unavailable } from "../lib/errors.ts";
import { hashPassword } from "../lib/password.ts";
import { withTestApp } from "./_fixture.ts";

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

Deno.test("a login storm: every login succeeds or is told to retry (503, Retry-After), none fails otherwise", () =>
  withTestApp(
    { env: { PASSWORD_HASH_CONCURRENCY: "1", PASSWORD_QUEUE_MAX_WAIT_MS: "300" } },
    async ({ db, app }) => {
      await db.sql`INSERT INTO users (email, hashed_password, role) VALUES
      ('storm@example.test', ${await hashPassword("storm-password")}, 'ADMIN')`;
      const responses = await Promise.all(Array.from({ length: 40 }, () =>
        app.request("/api/v1/auth/login", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ email: "storm@example.test", password: "storm-password" }),
        })));
      const statuses = responses.map((r) => r.status);
      assert(statuses.every((s) => s === 200 || s === 503), statuses.join());
      assert(statuses.includes(200) && statuses.includes(503), `both happen: ${statuses.join()}`);
      for (const res of responses.filter((r) => r.status === 503)) {
        assert(Number(res.headers.get("retry-after")) >= 1);
        assertEquals((await res.json()).detail.startsWith("Too many sign-ins at once"), true);
      }
      await Promise.all(responses.filter((r) => r.status === 200).map((r) => r.body?.cancel()));
    },
  ));

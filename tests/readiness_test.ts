/** The readiness cache on its own: one check a second, shared by every probe, on a clock of the test's. */
import { assertEquals } from "./_assert.ts";
import { cachedReadiness, type Readiness } from "../lib/readiness.ts";
import { setQuiet } from "../lib/log.ts";

Deno.test("probes within a second of a finished check, or while one runs, share it", async () => {
  setQuiet(true);
  let t = 0;
  let checks = 0;
  let release = () => {};
  const check = () => {
    checks++;
    return new Promise<Readiness>((resolve) => release = () => resolve({ ready: false, reason: "down" }));
  };
  const readiness = cachedReadiness(check, { now: () => t });
  const during = [readiness(), readiness(), readiness()];
  t = 5000; // A check that takes long is still the one everybody waits for.
  during.push(readiness());
  release();
  assertEquals(await Promise.all(during), Array(4).fill({ ready: false, reason: "down" }));
  assertEquals(checks, 1);
  t = 5999;
  await readiness();
  assertEquals(checks, 1, "within a second of its end");
  t = 6000;
  const next = readiness();
  release();
  await next;
  assertEquals(checks, 2, "a second later, a new check");
  setQuiet(false);
});

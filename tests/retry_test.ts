import { assertEquals, assertRejects } from "./_assert.ts";
import { transience, withRetry } from "../lib/retry.ts";

const failure = (code: string) => Object.assign(new Error(code), { code });

Deno.test("errors after which PostgreSQL rolled back are safe to retry; lost connections are not known", () => {
  assertEquals(transience(failure("40001")), "safe");
  assertEquals(transience(failure("40P01")), "safe");
  assertEquals(transience(failure("08006")), "safe");
  assertEquals(transience(failure("CONNECT_TIMEOUT")), "safe");
  assertEquals(transience(failure("CONNECTION_CLOSED")), "unknown-outcome");
  assertEquals(transience(failure("23505")), "permanent");
  assertEquals(transience(new Error("plain")), "permanent");
});

Deno.test("withRetry retries a serialization failure and stops after the attempt limit", async () => {
  let calls = 0;
  const value = await withRetry(() => {
    calls++;
    return calls < 3 ? Promise.reject(failure("40001")) : Promise.resolve("done");
  }, { attempts: 4, baseDelayMs: 1, idempotent: false });
  assertEquals([value, calls], ["done", 3]);

  calls = 0;
  await assertRejects(() =>
    withRetry(() => {
      calls++;
      return Promise.reject(failure("40P01"));
    }, { attempts: 4, baseDelayMs: 1, idempotent: false }), Error);
  assertEquals(calls, 4);
});

Deno.test("a lost connection is retried only when the operation is idempotent", async () => {
  let calls = 0;
  const op = () => {
    calls++;
    return calls === 1 ? Promise.reject(failure("CONNECTION_CLOSED")) : Promise.resolve("ok");
  };
  await assertRejects(() => withRetry(op, { attempts: 4, baseDelayMs: 1, idempotent: false }), Error);
  assertEquals(calls, 1);
  calls = 0;
  assertEquals(await withRetry(op, { attempts: 4, baseDelayMs: 1, idempotent: true }), "ok");
  assertEquals(calls, 2);
});

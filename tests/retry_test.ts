import { assertEquals, assertRejects } from "./_assert.ts";
import { transience, unavailability, withRetry } from "../lib/retry.ts";

const failure = (code: string) => Object.assign(new Error(code), { code });

// Every code a client meets when the server is down, starting, stopping, overloaded or
// refusing us, with what a retry may do and how the API answers. One row each, on purpose.
const CLASSIFIED: [string, ReturnType<typeof transience>, ReturnType<typeof unavailability>, string][] = [
  ["40001", "safe", "busy", "serialization failure: PostgreSQL rolled back"],
  ["40P01", "safe", "busy", "deadlock: PostgreSQL rolled back"],
  ["ECONNREFUSED", "safe", "down", "nothing listens: nothing was sent"],
  ["CONNECT_TIMEOUT", "safe", "down", "no connection within the timeout: nothing was sent"],
  ["ENOTFOUND", "safe", "down", "the host name does not resolve"],
  ["57P03", "safe", "down", "cannot_connect_now: starting up or shutting down, refused at connect"],
  ["53300", "safe", "busy", "too_many_connections, refused at connect"],
  ["08001", "safe", "down", "unable to establish a connection"],
  ["08004", "safe", "down", "the server rejected the connection"],
  ["CONNECTION_CLOSED", "unknown-outcome", "down", "the socket closed mid-statement"],
  ["ECONNRESET", "unknown-outcome", "down", "the socket was reset mid-statement"],
  ["57P01", "unknown-outcome", "down", "admin_shutdown: a FATAL can follow the commit"],
  ["57P02", "unknown-outcome", "down", "crash_shutdown: sessions end at any point"],
  ["08006", "unknown-outcome", "down", "connection_failure while a statement ran"],
  ["08007", "unknown-outcome", "down", "transaction_resolution_unknown"],
  ["08003", "unknown-outcome", "down", "connection_does_not_exist"],
  ["57P04", "permanent", "down", "database_dropped"],
  ["57P05", "permanent", "down", "idle_session_timeout: reported on an idle session"],
  ["3D000", "permanent", "down", "the database does not exist"],
  ["28P01", "permanent", "down", "the server refuses our password"],
  ["57014", "permanent", "busy", "statement timeout: cancelled, not retried blindly"],
  ["08P01", "permanent", null, "protocol violation: a bug or a pooler that does not speak our protocol"],
  ["23505", "permanent", null, "unique violation: the request, not the database"],
  ["42P01", "permanent", null, "undefined table: a bug"],
];

for (const [code, retry, outage, why] of CLASSIFIED) {
  Deno.test(`database error ${code} (${why}) is ${retry} to retry and ${outage ?? "not an outage"}`, () => {
    assertEquals(transience(failure(code)), retry);
    assertEquals(unavailability(failure(code)), outage);
  });
}

Deno.test("errors without a code are permanent and not outages", () => {
  assertEquals(transience(new Error("plain")), "permanent");
  assertEquals(unavailability(new Error("plain")), null);
  assertEquals(transience(null), "permanent");
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

/**
 * lib/connection.ts: a transaction or reserved connection the server drops
 * fails with the connection error and the process lives on (postgres.js's own
 * begin() ends the process there, see the module); the pool keeps serving.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "./_assert.ts";
import {
  Cancellation,
  inTransaction,
  ReservedConnection,
  StatementCancelled,
  transaction,
} from "../lib/connection.ts";
import type { Sql } from "../lib/db.ts";
import { unavailability } from "../lib/retry.ts";
import { createTestDatabase, hasServer } from "./_db.ts";
import { until, withTestApp } from "./_fixture.ts";
import { blockScans } from "./_integrity.ts";

/**
 * SELECT 1, tried up to `attempts` times: a pool connection the server closed in the middle of
 * a statement fails the first statement after its reconnect once more (postgres.js keeps that
 * error), which callers see as the database being unavailable and retry.
 */
async function answersWithin(sql: Sql, attempts: number): Promise<number> {
  for (let i = 1;; i++) {
    try {
      const [{ one }] = await sql<{ one: number }[]>`SELECT 1 AS one`;
      return one;
    } catch (err) {
      if (i >= attempts || unavailability(err) !== "down") throw err;
    }
  }
}

const SERVER_ONLY = { ignore: !hasServer, sanitizeOps: false, sanitizeResources: false };

/** Terminates the backend `pid` from another connection after `ms`. */
function terminateLater(
  admin: Sql,
  pid: number,
  ms = 200,
) {
  return new Promise<void>((resolve) =>
    setTimeout(() => admin`SELECT pg_terminate_backend(${pid})`.then(() => resolve(), () => resolve()), ms)
  );
}

Deno.test({
  ...SERVER_ONLY,
  name: "a transaction whose connection the server terminates rejects; the pool serves on",
}, async () => {
  const db = await createTestDatabase({ max: 2 });
  const admin = db.connect(1);
  try {
    let killed: Promise<void> | null = null;
    const err = await assertRejects(() =>
      transaction(db.sql, async (tx) => {
        const [{ pid }] = await tx<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
        killed = terminateLater(admin, pid);
        await tx`SELECT pg_sleep(5)`;
      }), Error);
    await killed;
    assert(err.message.length > 0);
    // Let any write postgres.js scheduled on the dead socket run: it would end the process here.
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(await answersWithin(db.sql, 3), 1);
  } finally {
    await db.close();
  }
});

Deno.test({
  ...SERVER_ONLY,
  name: "a failing statement rolls the transaction back and hands the connection back",
}, async () => {
  const db = await createTestDatabase({ max: 1 });
  try {
    await db.sql`CREATE TABLE t (n int)`;
    await assertRejects(() =>
      transaction(db.sql, "isolation level repeatable read", async (tx) => {
        await tx`INSERT INTO t VALUES (1)`;
        await tx`SELECT 1 / 0`;
      }), Error);
    // One connection in the pool: this answers only if it was released, outside any transaction.
    const [{ n }] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM t`;
    assertEquals(n, 0);
    const committed = await transaction(db.sql, async (tx) => {
      await tx`INSERT INTO t VALUES (2)`;
      return "done";
    });
    assertEquals(committed, "done");
    assertEquals((await db.sql`SELECT n FROM t`).map((r) => r.n), [2]);
  } finally {
    await db.close();
  }
});

Deno.test({
  ...SERVER_ONLY,
  name: "a reserved connection knows it was closed; release and ROLLBACK send nothing then",
}, async () => {
  const db = await createTestDatabase({ max: 2 });
  const admin = db.connect(1);
  try {
    const conn = await ReservedConnection.open(db.sql);
    assert(conn.alive());
    const [{ pid }] = await conn.sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
    const killed = terminateLater(admin, pid, 100);
    const err = await assertRejects(() => inTransaction(conn, "", (tx) => tx`SELECT pg_sleep(5)`), Error);
    await killed;
    assertEquals(await conn.settle(err), false);
    assertEquals(conn.alive(), false);
    conn.release();
    // Nothing was written on the dead socket (that would end the process within a tick).
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(await answersWithin(db.sql, 3), 1);
  } finally {
    await db.close();
  }
});

Deno.test({
  ...SERVER_ONLY,
  name: "a cancellation stops its running statement on the server and refuses later ones; the pool serves on",
}, async () => {
  const db = await createTestDatabase({ max: 1 });
  const admin = db.connect(1);
  try {
    const cancellation = new Cancellation();
    let pid = 0;
    const work = transaction(db.sql, async (tx) => {
      const watched = cancellation.watch(tx);
      [{ pid }] = await watched<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      await watched`SELECT pg_sleep(30)`;
      await watched`SELECT 1`;
    });
    // Its failure is awaited below; handled from now, so its rejection is never an unhandled one.
    const failed = work.then(() => null, (err: Error) => err);
    const running = async () =>
      (await admin<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${pid} AND state = 'active'`)[0].n;
    await until("the statement runs", async () => pid !== 0 && await running() === 1);
    await cancellation.cancel(5000);
    // Once cancel() is back the server has stopped it, not just been asked to.
    assertEquals(await running(), 0);
    const err = await failed;
    assertEquals((err as { code?: string } | null)?.code, "57014", "canceling statement due to user request");
    // Refused before it is sent.
    assertThrows(() => cancellation.watch(db.sql)`SELECT 1`, StatementCancelled);
    // The transaction rolled back and its only connection went back to the pool.
    assertEquals(await answersWithin(db.sql, 1), 1);
  } finally {
    await db.close();
  }
});

Deno.test({
  ...SERVER_ONLY,
  name: "a full check whose connection the server terminates is recorded as failed; the app answers on",
}, () =>
  withTestApp({ students: 20 }, async (t) => {
    const release = await blockScans(t.db.connect(1));
    const admin = t.db.connect(1);
    const check = t.deps.runner.run("manual");
    // The check waits on the blocked table: end its backend from outside, as a restart would.
    await until("the check waits for the lock", async () => (await waitingPids(admin)).length > 0);
    for (const pid of await waitingPids(admin)) await admin`SELECT pg_terminate_backend(${pid})`;
    const record = await check;
    await release();
    assertEquals(record.outcome, "failure");
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(await answersWithin(t.db.sql, 3), 1);
    const next = await t.deps.runner.run("manual");
    assertEquals(next.outcome, "success");
  }));

/** Backends of this database waiting for a lock (the blocked check). */
async function waitingPids(sql: Sql): Promise<number[]> {
  const rows = await sql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`;
  return rows.map((r) => r.pid);
}

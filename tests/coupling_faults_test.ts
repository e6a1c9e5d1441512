/**
 * The coupling enforcer under injected database faults, through the HTTP app:
 * transient errors are retried a bounded number of times, and no change is
 * ever applied twice, not even when the connection drops after the commit.
 */
import postgres from "postgres";
import { assert, assertEquals } from "./_assert.ts";
import { applyXpChanges, MAX_ATTEMPTS } from "../lib/coupling.ts";
import { Unavailable } from "../lib/errors.ts";
import { clientOptions } from "../lib/db.ts";
import { hasServer, type TestDatabase } from "./_db.ts";
import { type App, award, withTestApp } from "./_fixture.ts";
import { INSTRUCTOR_ID } from "./_students.ts";

/**
 * Makes the next `times` ledger inserts fail with `code` inside the update's
 * transaction (after progress and license were written). The counter is a
 * sequence, so it survives the rollback it causes.
 */
async function injectFault(db: TestDatabase, code: string, times: number) {
  await db.sql.unsafe(`
    CREATE SEQUENCE fault_calls;
    CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval('fault_calls') <= ${times} THEN
        RAISE EXCEPTION 'injected fault' USING ERRCODE = '${code}';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER inject_fault AFTER INSERT ON xp_events FOR EACH ROW EXECUTE FUNCTION inject_fault();`);
}

async function faultCalls(db: TestDatabase): Promise<number> {
  const [{ last_value }] = await db.sql`SELECT last_value::int FROM fault_calls`;
  return last_value;
}

async function state(db: TestDatabase, student: number) {
  const [row] = await db.sql`
    SELECT (SELECT total_xp FROM specialization_progress WHERE student_id = ${student}) AS xp,
           (SELECT current_level FROM specialization_progress WHERE student_id = ${student}) AS progress_level,
           (SELECT current_level FROM user_licenses WHERE user_id = ${student}) AS license_level,
           (SELECT count(*)::int FROM xp_events WHERE student_id = ${student}) AS events`;
  return { ...row };
}

for (const [code, name] of [["40001", "serialization failure"], ["40P01", "deadlock"]]) {
  Deno.test({
    name: `a ${name} on the first attempt is retried and the change is applied exactly once`,
    ignore: !hasServer,
  }, () =>
    withTestApp({ pool: 2, students: 3 }, async ({ app, db }) => {
      await injectFault(db, code, 1);
      const res = await award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 150 });
      assertEquals(res.status, 200);
      assertEquals((await res.json()).progress.total_xp, 150);
      assertEquals(await faultCalls(db), 2, "one failed attempt, one that committed");
      assertEquals(await state(db, 1), { xp: 150, progress_level: 2, license_level: 2, events: 1 });
    }));
}

Deno.test({
  name: "retries are bounded: a failure that persists is a 503 and nothing is written",
  ignore: !hasServer,
}, () =>
  withTestApp({ pool: 2, students: 3 }, async ({ app, db }) => {
    await injectFault(db, "40001", 1000);
    const res = await award(app, { student_id: 2, specialization_id: "COACH", xp_change: 10 });
    assertEquals(res.status, 503);
    assertEquals(res.headers.get("content-type"), "application/problem+json");
    assertEquals(res.headers.get("retry-after"), "5");
    assertEquals(await faultCalls(db), MAX_ATTEMPTS, "exactly the attempt limit, then it gives up");
    assertEquals(await state(db, 2), { xp: null, progress_level: null, license_level: null, events: 0 });
  }));

/**
 * A TCP proxy in front of PostgreSQL that, once armed with some bytes, lets the
 * next message containing them through, waits until the server reports the
 * transaction over (ReadyForQuery, idle: committed), and then drops the
 * client's connection instead of delivering the result.
 */
function dropAfterCommitProxy(target: URL) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let armed: Uint8Array | null = null;
  let drops = 0;
  const readyIdle = new Uint8Array([0x5a, 0, 0, 0, 5, 0x49]); // 'Z', length 5, 'I'

  const contains = (hay: Uint8Array, needle: Uint8Array) => {
    outer: for (let i = 0; i + needle.length <= hay.length; i++) {
      for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
      return true;
    }
    return false;
  };
  const close = (c: Deno.Conn) => {
    conns.delete(c);
    try {
      c.close();
    } catch { /* already closed */ }
  };
  const writeAll = async (to: Deno.Conn, data: Uint8Array) => {
    for (let off = 0; off < data.length;) off += await to.write(data.subarray(off));
  };

  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
      conns.add(client).add(server);
      let doomed = false;
      let held = new Uint8Array(0);
      const pump = async (from: Deno.Conn, to: Deno.Conn, toServer: boolean) => {
        const buf = new Uint8Array(64 * 1024);
        try {
          for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
            const chunk = buf.slice(0, n);
            if (toServer && armed && contains(chunk, armed)) {
              armed = null;
              doomed = true;
            }
            if (!toServer && doomed) {
              held = new Uint8Array([...held, ...chunk]);
              if (contains(held, readyIdle)) {
                drops++;
                break;
              }
              continue;
            }
            await writeAll(to, chunk);
          }
        } catch { /* the other side closed */ }
        close(client);
        close(server);
      };
      pump(client, server, true);
      pump(server, client, false);
    }
  })().catch(() => {});

  return {
    url: (() => {
      const u = new URL(target);
      u.hostname = "127.0.0.1";
      u.port = String((listener.addr as Deno.NetAddr).port);
      return u.toString();
    })(),
    arm(text: string) {
      armed = new TextEncoder().encode(text);
    },
    get drops() {
      return drops;
    },
    stop() {
      listener.close();
      for (const c of [...conns]) close(c);
    },
  };
}

/** An app whose pool goes through the dropping proxy; `arm(text)` dooms the next statement containing it. */
function withDroppingApp(
  fn: (app: App, db: TestDatabase, arm: (t: string) => () => number) => Promise<void>,
) {
  return withTestApp({ pool: 2, students: 3 }, async ({ db, another }) => {
    const proxy = dropAfterCommitProxy(new URL(db.url));
    const sql = postgres(
      proxy.url,
      clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 60_000 }, 2),
    );
    try {
      const { app } = await another({ sql });
      await fn(app, db, (text) => {
        proxy.arm(text);
        return () => proxy.drops;
      });
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
      proxy.stop();
    }
  });
}

Deno.test({
  name: "a connection lost after the commit is retried with the Idempotency-Key and applied exactly once",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withDroppingApp(async (app, db, arm) => {
    const drops = arm("lost-ack-key-1");
    const res = await award(app, { student_id: 3, specialization_id: "INTERNSHIP", xp_change: 250 }, {
      "Idempotency-Key": "lost-ack-key-1",
    });
    assertEquals(drops(), 1, "the first attempt committed and its answer was dropped");
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("idempotent-replayed"), "true");
    const body = await res.json();
    assertEquals([body.progress.total_xp, body.license.current_level], [250, 2]);
    assertEquals(await state(db, 3), { xp: 250, progress_level: 2, license_level: 2, events: 1 });
  }));

Deno.test({
  name: "a connection lost after the commit without an Idempotency-Key is a 503, never a second application",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withDroppingApp(async (app, db, arm) => {
    const drops = arm("731337");
    const res = await award(app, { student_id: 3, specialization_id: "COACH", xp_change: 731337 });
    assertEquals(drops(), 1);
    assertEquals(res.status, 503);
    assertEquals((await res.json()).title, "Service unavailable");
    // It did commit: the client was told the outcome is unknown, and it was not applied again.
    assertEquals(await state(db, 3), { xp: 731337, progress_level: 8, license_level: 8, events: 1 });
  }));

Deno.test({
  name:
    "a connection lost after a batch committed: awards with an Idempotency-Key replay, the others are told the outcome is unknown, none applies twice",
  ignore: !hasServer,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp({ pool: 2, students: 3 }, async ({ db }) => {
    const proxy = dropAfterCommitProxy(new URL(db.url));
    const sql = postgres(
      proxy.url,
      clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 60_000 }, 2),
    );
    try {
      const award = (studentId: number, specializationId: string, xpChange: number, key?: string) => ({
        studentId,
        specializationId,
        xpChange,
        actorId: INSTRUCTOR_ID,
        requestId: `batch-${studentId}`,
        idempotencyKey: key,
      });
      proxy.arm("lost-batch-key");
      const [keyed, plain] = await applyXpChanges(sql, [
        award(1, "PLAYER", 150, "lost-batch-key"),
        award(2, "COACH", 40),
      ]);
      assertEquals(proxy.drops, 1, "the batch committed and its answer was dropped");
      assert(keyed.ok, "the award with a key is sent again and replays");
      assertEquals(keyed.value.replayed, true);
      assertEquals(JSON.parse(keyed.value.body).progress.total_xp, 150);
      assert(!plain.ok && plain.error instanceof Unavailable);
      assertEquals((plain.error as Error).message.includes("may or may not have been applied"), true);
      assertEquals(await state(db, 1), { xp: 150, progress_level: 2, license_level: 2, events: 1 });
      assertEquals(await state(db, 2), { xp: 40, progress_level: 1, license_level: 1, events: 1 });
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
      proxy.stop();
    }
  }));

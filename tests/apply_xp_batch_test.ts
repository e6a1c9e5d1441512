/**
 * Group commit on the database side: `apply_xp_batch` (migration 0014) through
 * `applyXpChanges`, and through the HTTP app when awards queue for a busy pool.
 * Each award is answered as `apply_xp` would answer it alone; a failure of one
 * never fails another.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  type AppliedChange,
  applyXpChange,
  applyXpChanges,
  type Settled,
  type XpChange,
} from "../lib/coupling.ts";
import { KeyConflict, NotFound, Unauthenticated, Unavailable } from "../lib/errors.ts";
import type { Sql } from "../lib/db.ts";
import { hasServer, type TestDatabase } from "./_db.ts";
import { award, withTestApp } from "./_fixture.ts";
import { desyncs } from "./_integrity.ts";
import { ADMIN_ID, INSTRUCTOR_ID } from "./_students.ts";

const INACTIVE_INSTRUCTOR = 100_003;

let requests = 0;
/** An award by the instructor (each with a request id of its own). */
function change(studentId: number, specializationId: string, xpChange: number, more: Partial<XpChange> = {}) {
  return {
    studentId,
    specializationId,
    xpChange,
    actorId: INSTRUCTOR_ID,
    requestId: `r-${++requests}`,
    ...more,
  };
}

function value(answer: Settled): AppliedChange {
  if (!answer.ok) throw new Error(`expected a result, got ${answer.error}`);
  return answer.value;
}

function failure(answer: Settled): unknown {
  assert(!answer.ok, `expected a failure, got ${JSON.stringify(answer.ok && answer.value)}`);
  return answer.error;
}

/** The transactions the ledger rows of these events were written in. */
async function transactions(sql: Sql, eventIds: number[]): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`
    SELECT count(DISTINCT xmin::text)::int AS n FROM xp_events WHERE id = ANY(${eventIds}::bigint[])`;
  return n;
}

async function totals(db: TestDatabase, student: number) {
  const rows = await db.sql<{ spec: string; xp: number; ledger: number; events: number }[]>`
    SELECT p.specialization_id AS spec, p.total_xp AS xp,
           (SELECT coalesce(sum(xp_after - xp_before), 0)::int FROM xp_events e
             WHERE e.student_id = p.student_id AND e.specialization_id = p.specialization_id) AS ledger,
           (SELECT count(*)::int FROM xp_events e
             WHERE e.student_id = p.student_id AND e.specialization_id = p.specialization_id) AS events
    FROM specialization_progress p WHERE p.student_id = ${student} ORDER BY 1`;
  return [...rows];
}

Deno.test({
  name: "a batch answers each award as apply_xp would, and writes the applied ones in one transaction",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 10 }, async ({ db }) => {
    await db.sql`
      INSERT INTO users (id, email, hashed_password, role, is_active)
      VALUES (${INACTIVE_INSTRUCTOR}, 'gone@test.example', 'unused', 'INSTRUCTOR', false)`;
    // Student 1 has progress already; keys "used" and "other" were recorded before.
    await applyXpChange(db.sql, change(1, "PLAYER", 50));
    const replayedBefore = await applyXpChange(db.sql, change(2, "COACH", 20, { idempotencyKey: "used" }));
    await applyXpChange(db.sql, change(3, "COACH", 20, { idempotencyKey: "other" }));

    const answers = await applyXpChanges(db.sql, [
      change(1, "PLAYER", 100),
      change(4, "INTERNSHIP", 30, { idempotencyKey: "fresh" }),
      change(999, "PLAYER", 10, { idempotencyKey: "nobody" }),
      change(ADMIN_ID, "PLAYER", 10),
      change(5, "PLAYER", 10, { actorId: INACTIVE_INSTRUCTOR }),
      change(6, "PLAYER", 10, { deadline: new Date(Date.now() - 1000) }),
      change(2, "COACH", 20, { idempotencyKey: "used" }),
      change(3, "COACH", 21, { idempotencyKey: "other" }),
    ]);

    const first = JSON.parse(value(answers[0]).body);
    assertEquals([first.previous_level, first.progress.total_xp, first.leveled_up], [1, 150, true]);
    assertEquals(value(answers[0]).replayed, false);
    const enrolled = JSON.parse(value(answers[1]).body);
    assertEquals([enrolled.progress.total_xp, enrolled.license.current_level], [30, 1]);
    assert(failure(answers[2]) instanceof NotFound);
    assert(failure(answers[3]) instanceof NotFound, "an admin is not a student");
    assert(failure(answers[4]) instanceof Unauthenticated);
    const expired = failure(answers[5]);
    assert(expired instanceof Unavailable && /too late/.test(expired.message));
    assertEquals(value(answers[6]), { body: replayedBefore.body, replayed: true });
    assert(failure(answers[7]) instanceof KeyConflict);

    const applied = [first.event_id, enrolled.event_id];
    assertEquals(await transactions(db.sql, applied), 1, "one commit for the batch");
    assertEquals((await totals(db, 1)).map((t) => [t.spec, t.xp, t.ledger, t.events]), [[
      "PLAYER",
      150,
      150,
      2,
    ]]);
    for (const student of [5, 6]) assertEquals(await totals(db, student), [], `student ${student}: nothing`);
    // Replays and refusals are remembered as apply_xp remembers them.
    assert(
      failure(
        (await applyXpChanges(db.sql, [change(999, "PLAYER", 10, { idempotencyKey: "nobody" })]))[0],
      ) instanceof NotFound,
    );
    assertEquals(
      value((await applyXpChanges(db.sql, [change(4, "INTERNSHIP", 30, { idempotencyKey: "fresh" })]))[0]),
      { body: value(answers[1]).body, replayed: true },
    );
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name: "a batch with one failing award commits the others and answers each correctly",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 10 }, async ({ db }) => {
    await applyXpChange(db.sql, change(3, "COACH", 20, { idempotencyKey: "taken" }));
    // Any ledger row of student 7 fails its statement (as a broken trigger or a constraint would).
    await db.sql.unsafe(`
      CREATE FUNCTION refuse_student_7() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.student_id = 7 THEN RAISE EXCEPTION 'student 7 is refused' USING ERRCODE = 'check_violation'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_student_7 BEFORE INSERT ON xp_events FOR EACH ROW EXECUTE FUNCTION refuse_student_7();`);
    const answers = await applyXpChanges(db.sql, [
      change(1, "PLAYER", 100),
      change(7, "PLAYER", 100),
      change(999, "PLAYER", 10),
      change(3, "COACH", 99, { idempotencyKey: "taken" }),
      change(2, "COACH", 40, { idempotencyKey: "k-2" }),
    ]);
    assertEquals(JSON.parse(value(answers[0]).body).progress.total_xp, 100);
    assertEquals((failure(answers[1]) as { code?: string }).code, "23514", "the failing award fails alone");
    assert(failure(answers[2]) instanceof NotFound);
    assert(failure(answers[3]) instanceof KeyConflict);
    assertEquals(JSON.parse(value(answers[4]).body).progress.total_xp, 40);
    assertEquals((await totals(db, 1)).map((t) => [t.xp, t.ledger, t.events]), [[100, 100, 1]]);
    assertEquals((await totals(db, 2)).map((t) => [t.xp, t.ledger, t.events]), [[40, 40, 1]]);
    assertEquals(await totals(db, 7), [], "nothing of the failed award was written");
    assertEquals((await totals(db, 3)).map((t) => [t.xp, t.events]), [[20, 1]]);
    // The key of the others stands; the failed award claimed none.
    const keys = await db.sql`SELECT key, outcome FROM idempotency_keys ORDER BY key`;
    assertEquals(keys.map((k) => [k.key, k.outcome]), [["k-2", "applied"], ["taken", "applied"]]);
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name:
    "two awards with one Idempotency-Key in one batch: the first applies, the same body replays, another conflicts",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 10 }, async ({ db }) => {
    const answers = await applyXpChanges(db.sql, [
      change(1, "PLAYER", 70, { idempotencyKey: "twice" }),
      change(2, "PLAYER", 5),
      change(1, "PLAYER", 70, { idempotencyKey: "twice" }),
      change(1, "PLAYER", 71, { idempotencyKey: "twice" }),
      // The same key of another actor is another key.
      change(1, "PLAYER", 70, { idempotencyKey: "twice", actorId: ADMIN_ID }),
    ]);
    const applied = value(answers[0]);
    assertEquals(applied.replayed, false);
    assertEquals(value(answers[2]), { body: applied.body, replayed: true });
    assert(failure(answers[3]) instanceof KeyConflict);
    assertEquals(value(answers[4]).replayed, false);
    assertEquals(JSON.parse(value(answers[4]).body).progress.total_xp, 140);
    assertEquals((await totals(db, 1)).map((t) => [t.xp, t.events]), [[140, 2]]);
  }));

Deno.test({
  name: "awards of one pair in one batch apply one after the other, each with its own ledger row",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 10 }, async ({ db }) => {
    const answers = await applyXpChanges(db.sql, [
      change(4, "COACH", 80),
      change(4, "PLAYER", 1),
      change(4, "COACH", 30),
      change(4, "COACH", 300),
    ]);
    const coach = [0, 2, 3].map((i) => JSON.parse(value(answers[i]).body));
    assertEquals(
      coach.map((b) => [b.previous_level, b.progress.total_xp, b.xp_applied, b.leveled_up]),
      // COACH: level 2 from 150 XP, 3 from 450.
      [[1, 80, 80, false], [1, 110, 30, false], [1, 410, 300, true]],
    );
    const ledger = await db.sql`
      SELECT xp_before, xp_after FROM xp_events WHERE student_id = 4 AND specialization_id = 'COACH' ORDER BY id`;
    assertEquals(ledger.map((r) => [r.xp_before, r.xp_after]), [[0, 80], [80, 110], [110, 410]]);
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name: "a batch writes what the same awards applied one by one with apply_xp write",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 10 }, async ({ db }) => {
    // Students 1..5 get the awards one by one, 6..10 the same awards in batches; then compare. Few
    // pairs, so a batch holds several awards of one pair; huge ones saturate at 2^53-1.
    const specs = ["PLAYER", "COACH", "INTERNSHIP"];
    const awards = Array.from({ length: 90 }, (_, i) => ({
      student: 1 + (i * 3) % 5,
      spec: specs[(i * 7) % 3],
      xp: i % 5 === 4 ? 5_000_000_000_000_000 : 1 + (i * 7919) % 2500,
    }));
    const strip = (body: string) => {
      const b = JSON.parse(body);
      b.student_id = b.student_id > 5 ? b.student_id - 5 : b.student_id;
      delete b.event_id;
      delete b.progress.updated_at;
      delete b.license.updated_at;
      return b;
    };
    const alone = [];
    for (const a of awards) {
      alone.push(strip((await applyXpChange(db.sql, change(a.student, a.spec, a.xp))).body));
    }
    const together = [];
    for (let i = 0; i < awards.length; i += 30) {
      const answers = await applyXpChanges(
        db.sql,
        awards.slice(i, i + 30).map((a) => change(a.student + 5, a.spec, a.xp)),
      );
      together.push(...answers.map((a) => strip(value(a).body)));
    }
    assertEquals(together, alone);
    assert(alone.some((b) => b.xp_applied < b.xp_change), "some award saturated");
    const state = (from: number) =>
      db.sql`
        SELECT p.student_id - ${from} AS s, p.specialization_id, p.total_xp, p.current_level,
               l.current_level AS license_level, l.max_achieved_level,
               (SELECT array_agg(e.xp_before || '>' || e.xp_after ORDER BY e.id) FROM xp_events e
                 WHERE e.student_id = p.student_id AND e.specialization_id = p.specialization_id) AS ledger
        FROM specialization_progress p
        JOIN user_licenses l ON l.user_id = p.student_id AND l.specialization_type = p.specialization_id
        WHERE p.student_id BETWEEN ${from + 1} AND ${from + 5} ORDER BY 1, 2`;
    assertEquals((await state(5)).map((r) => ({ ...r })), (await state(0)).map((r) => ({ ...r })));
    assertEquals(await desyncs(db.sql), 0);
  }));

Deno.test({
  name: "concurrent batches, single awards and repairs never deadlock",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 30, pool: 12 }, async ({ db }) => {
    // A deadlock would be found after deadlock_timeout (1 s) and one side aborted with 40P01.
    const sql = db.connect(12);
    const failures: unknown[] = [];
    const specs = ["PLAYER", "COACH", "INTERNSHIP"];
    const random = (n: number) => Math.floor(Math.random() * n);
    const pick = () => change(1 + random(30), specs[random(3)], 1 + random(500));
    // Keys are shared between writers on purpose: a retried request racing its first attempt.
    const keyed = () => ({ ...pick(), idempotencyKey: `k-${random(15)}` });
    const batch = () =>
      sql`SELECT count(*) FROM apply_xp_batch(${
        JSON.stringify(
          Array.from({ length: 2 + random(8) }, () => random(3) ? pick() : keyed()).map((c) => ({
            student_id: c.studentId,
            specialization_id: c.specializationId,
            xp_change: c.xpChange,
            actor_id: c.actorId,
            request_id: c.requestId,
            key: (c as { idempotencyKey?: string }).idempotencyKey ?? null,
          })),
        )
      }::text::json)`;
    const single = () => {
      const c = random(2) ? pick() : keyed();
      return sql`SELECT outcome FROM apply_xp(${c.studentId}, ${c.specializationId}, ${c.xpChange},
        ${c.actorId}, ${c.requestId}, ${(c as { idempotencyKey?: string }).idempotencyKey ?? null}, NULL)`;
    };
    const repair = () =>
      sql.begin(async (tx) => {
        // A repair's locks: every progress row of some students in id order, then their licenses.
        const students = Array.from({ length: 5 }, () => 1 + random(30));
        await tx`SELECT id FROM specialization_progress WHERE student_id = ANY(${students}::int[]) ORDER BY id FOR UPDATE`;
        await tx`
          SELECT id FROM user_licenses WHERE user_id = ANY(${students}::int[]) ORDER BY id FOR UPDATE`;
      });
    const writer = async (kind: () => Promise<unknown>) => {
      for (let i = 0; i < 25; i++) await kind().catch((err) => failures.push(err));
    };
    await Promise.all([
      ...Array.from({ length: 6 }, () => writer(batch)),
      ...Array.from({ length: 3 }, () => writer(single)),
      ...Array.from({ length: 2 }, () => writer(repair)),
    ]);
    await sql.end();
    assertEquals(failures.map((e) => `${(e as { code?: string }).code}: ${(e as Error).message}`), []);
    assertEquals(await desyncs(db.sql), 0);
    const [{ bad }] = await db.sql<{ bad: number }[]>`
      SELECT count(*)::int AS bad FROM specialization_progress p
      WHERE p.total_xp <> (SELECT coalesce(sum(xp_after - xp_before), 0) FROM xp_events e
                           WHERE e.student_id = p.student_id AND e.specialization_id = p.specialization_id)`;
    assertEquals(bad, 0, "every total equals its ledger");
  }));

Deno.test({
  name: "awards that queue for a busy pool are sent together, and each request gets its own answer",
  ignore: !hasServer,
}, () =>
  withTestApp({ students: 10, pool: 1 }, async ({ app, db, deps }) => {
    await award(app, { student_id: 3, specialization_id: "COACH", xp_change: 20 }, {
      "Idempotency-Key": "taken",
    });
    // One lane: the first request goes alone, the others queue behind it and go as one batch.
    const responses = await Promise.all([
      award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 10 }),
      award(app, { student_id: 1, specialization_id: "PLAYER", xp_change: 20 }),
      award(app, { student_id: 999, specialization_id: "PLAYER", xp_change: 10 }),
      award(app, { student_id: 3, specialization_id: "COACH", xp_change: 99 }, {
        "Idempotency-Key": "taken",
      }),
      award(app, { student_id: 2, specialization_id: "COACH", xp_change: 30 }, { "Idempotency-Key": "new" }),
      award(app, { student_id: 2, specialization_id: "COACH", xp_change: 30 }, { "Idempotency-Key": "new" }),
    ]);
    assertEquals(responses.map((r) => r.status), [200, 200, 404, 422, 200, 200]);
    // Whichever of the two with one key came first applied it; the other replays it.
    const replays = [responses[4], responses[5]].map((r) => r.headers.get("idempotent-replayed"));
    assertEquals(replays.sort(), ["true", null].sort());
    const bodies = await Promise.all(responses.map((r) => r.json()));
    assertEquals(bodies[5], bodies[4]);
    assertEquals(bodies[2].status, 404);
    const events = [bodies[0].event_id, bodies[1].event_id, bodies[4].event_id];
    assert(await transactions(db.sql, events) < events.length, "some awards shared a transaction");
    assertEquals((await totals(db, 1)).map((t) => [t.xp, t.events]), [[30, 2]]);
    assertEquals(deps.awards.waiting, 0);
  }));

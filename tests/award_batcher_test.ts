/**
 * The group commit's queue on its own (no database): an award with a free
 * lane goes at once and alone, awards that arrive while every lane is busy go
 * together with the next free lane, and every award gets its own answer.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { AwardBatcher, type AwardSender } from "../lib/award_batcher.ts";
import type { AppliedChange, Settled, XpChange } from "../lib/coupling.ts";
import { NotFound } from "../lib/errors.ts";
import { inRequestScope, log } from "../lib/log.ts";
import { capturingStderr } from "./_fixture.ts";

/** A sender whose calls wait until the test settles them; it records what each call carried. */
function heldSender() {
  const calls: { ids: number[]; settle: (fail?: Set<number>) => void; crash: (err: Error) => void }[] = [];
  const result = (c: XpChange): AppliedChange => ({ body: `{"student_id":${c.studentId}}`, replayed: false });
  const sender: AwardSender = {
    one: (change) =>
      new Promise((resolve, reject) =>
        calls.push({
          ids: [change.studentId],
          settle: (fail) =>
            fail?.has(change.studentId) ? reject(new NotFound("no")) : resolve(result(change)),
          crash: reject,
        })
      ),
    many: (changes) =>
      new Promise<Settled[]>((resolve, reject) =>
        calls.push({
          ids: changes.map((c) => c.studentId),
          settle: (fail) =>
            resolve(
              changes.map((c) =>
                fail?.has(c.studentId)
                  ? { ok: false, error: new NotFound("no") }
                  : { ok: true, value: result(c) }
              ),
            ),
          crash: reject,
        })
      ),
  };
  return { sender, calls };
}

const award = (studentId: number): XpChange => ({
  studentId,
  specializationId: "PLAYER",
  xpChange: 10,
  actorId: 1,
  requestId: `r-${studentId}`,
});

/** Lets pending promise callbacks run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

Deno.test("an award that arrives while none is in flight is sent at once, alone", async () => {
  const { sender, calls } = heldSender();
  const sizes: number[] = [];
  const batcher = new AwardBatcher(sender, { lanes: 2, onSend: (n) => sizes.push(n) });
  const first = batcher.apply(award(1));
  // Sent before anything was awaited: an idle service adds no latency.
  assertEquals(calls.map((c) => c.ids), [[1]]);
  assertEquals(sizes, [1]);
  calls[0].settle();
  assertEquals((await first).body, `{"student_id":1}`);
  const second = batcher.apply(award(2));
  assertEquals(calls.map((c) => c.ids), [[1], [2]], "idle again: the next one goes at once too");
  calls[1].settle();
  await second;
});

Deno.test("awards that arrive while one is in flight go together, at the end of the turn, on a free lane", async () => {
  const { sender, calls } = heldSender();
  const sizes: number[] = [];
  const batcher = new AwardBatcher(sender, { lanes: 2, onSend: (n) => sizes.push(n) });
  const answers = [1, 2, 3, 4].map((id) => batcher.apply(award(id)));
  assertEquals(calls.map((c) => c.ids), [[1]]);
  assertEquals(batcher.waiting, 3);
  await settle();
  assertEquals(calls.map((c) => c.ids), [[1], [2, 3, 4]], "the turn's three, in arrival order, on lane 2");
  assertEquals(batcher.waiting, 0);
  calls.forEach((c) => c.settle());
  const bodies = (await Promise.all(answers)).map((a) => a.body);
  assertEquals(bodies, [1, 2, 3, 4].map((id) => `{"student_id":${id}}`));
  assertEquals(sizes, [1, 3]);
});

Deno.test("awards that arrive while every lane is busy go with the first lane that comes back", async () => {
  const { sender, calls } = heldSender();
  const batcher = new AwardBatcher(sender, { lanes: 2 });
  const early = [1, 2, 3].map((id) => batcher.apply(award(id)));
  await settle();
  assertEquals(calls.map((c) => c.ids), [[1], [2, 3]]);
  const late = [4, 5, 6].map((id) => batcher.apply(award(id)));
  await settle();
  assertEquals(calls.length, 2, "no lane free: they wait");
  assertEquals(batcher.waiting, 3);
  calls[1].settle();
  await settle();
  assertEquals(calls.map((c) => c.ids), [[1], [2, 3], [4, 5, 6]]);
  calls[0].settle();
  calls[2].settle();
  assertEquals((await Promise.all([...early, ...late])).length, 6);
});

Deno.test("a call carries at most maxBatch awards; the rest go with the next free lane", async () => {
  const { sender, calls } = heldSender();
  const batcher = new AwardBatcher(sender, { lanes: 1, maxBatch: 3 });
  const answers = [1, 2, 3, 4, 5, 6, 7].map((id) => batcher.apply(award(id)));
  await settle();
  assertEquals(calls.map((c) => c.ids), [[1]]);
  calls[0].settle();
  await settle();
  assertEquals(calls.map((c) => c.ids), [[1], [2, 3, 4]]);
  calls[1].settle();
  await settle();
  assertEquals(calls.map((c) => c.ids), [[1], [2, 3, 4], [5, 6, 7]]);
  calls[2].settle();
  assertEquals((await Promise.all(answers)).length, 7);
});

Deno.test("each award of a call gets its own answer: a refused one fails alone", async () => {
  const { sender, calls } = heldSender();
  const batcher = new AwardBatcher(sender, { lanes: 1 });
  const answers = [1, 2, 3, 4].map((id) => batcher.apply(award(id)));
  calls[0].settle(new Set([1]));
  await assertRejects(() => answers[0], NotFound);
  await settle();
  assertEquals(calls[1].ids, [2, 3, 4]);
  calls[1].settle(new Set([3]));
  assertEquals((await answers[1]).body, `{"student_id":2}`);
  await assertRejects(() => answers[2], NotFound);
  assertEquals((await answers[3]).body, `{"student_id":4}`);
});

Deno.test("a call that fails outright fails its awards, and its lane serves the next ones", async () => {
  const { sender, calls } = heldSender();
  const batcher = new AwardBatcher(sender, { lanes: 1 });
  const answers = [1, 2, 3].map((id) => batcher.apply(award(id)));
  calls[0].settle();
  await settle();
  calls[1].crash(new Error("the sender broke"));
  for (const answer of answers.slice(1)) {
    const err = await assertRejects(() => answer, Error);
    assertEquals(err.message, "the sender broke");
  }
  await answers[0];
  const later = batcher.apply(award(9));
  assertEquals(calls.at(-1)!.ids, [9], "the lane is free again: the next award goes at once");
  calls.at(-1)!.settle();
  assert((await later).body.includes("9"));
});

Deno.test("work done for a batch is logged without the fields of the request that happened to start it", async () => {
  const { sender, calls } = heldSender();
  const many = sender.many;
  sender.many = (changes) => {
    log("warn", "batch sent", { changes: changes.length });
    return many(changes);
  };
  const batcher = new AwardBatcher(sender, { lanes: 2 });
  const { lines } = await capturingStderr(async () => {
    const answers = [1, 2, 3].map((id) =>
      inRequestScope(() => ({ request_id: `request-${id}` }), () => batcher.apply(award(id)))
    );
    await settle();
    calls.forEach((c) => c.settle());
    await Promise.all(answers);
  });
  const line = JSON.parse(lines.find((l) => l.includes("batch sent"))!);
  assertEquals([line.changes, line.request_id], [2, undefined]);
});

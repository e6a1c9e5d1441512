/**
 * Kept password checks (lib/verified_passwords.ts) without a database: what is
 * kept and for how long, what ends it, and checks in flight shared. A real
 * gate counts the derivations; hashes use light parameters (the cache does
 * not care which).
 */
import { assert, assertEquals } from "./_assert.ts";
import { Admission } from "../lib/admission.ts";
import { hashPassword } from "../lib/password.ts";
import { VerifiedPasswords } from "../lib/verified_passwords.ts";

const LIGHT = { N: 2 ** 10, r: 8, p: 1 };
const PASSWORD = "correct horse battery staple";
const hash = await hashPassword(PASSWORD, { params: LIGHT });

/** A cache over a gate that counts the jobs it runs, with a clock the test moves. */
function setup(options: { ttlMs?: number; capacity?: number } = {}) {
  const gate = new Admission({ what: "checks", concurrency: 4, maxWaitMs: 60_000 });
  const counted = { n: 0 };
  const run = gate.run.bind(gate);
  gate.run = <T>(job: () => Promise<T>): Promise<T> => {
    counted.n++;
    return run(job);
  };
  const clock = { now: 1_000 };
  const verified = new VerifiedPasswords(gate, {
    ttlMs: options.ttlMs ?? 300_000,
    capacity: options.capacity,
    now: () => clock.now,
  });
  return { verified, derivations: counted, clock };
}

const account = (id: number, epoch = 0) => ({ id, epoch, hash });

Deno.test("a kept success answers the same password again without a derivation", async () => {
  const { verified, derivations } = setup();
  assertEquals(await verified.verify(account(1), PASSWORD), { ok: true, derived: true });
  assertEquals(await verified.verify(account(1), PASSWORD), { ok: true, derived: false });
  assertEquals(await verified.verify(account(1), PASSWORD), { ok: true, derived: false });
  assertEquals([derivations.n, verified.derivations, verified.hits], [1, 1, 2]);
});

Deno.test("a failure is never kept: every wrong password costs a derivation, and leaves the kept success alone", async () => {
  const { verified, derivations } = setup();
  for (let i = 0; i < 3; i++) {
    assertEquals(await verified.verify(account(1), "wrong"), { ok: false, derived: true });
  }
  assertEquals(derivations.n, 3);
  assertEquals(verified.size, 0);
  assert((await verified.verify(account(1), PASSWORD)).ok);
  assertEquals((await verified.verify(account(1), "wrong")).ok, false);
  assertEquals(derivations.n, 5);
  assertEquals(await verified.verify(account(1), PASSWORD), { ok: true, derived: false });
});

Deno.test("a kept success counts only at its epoch: a changed account derives again", async () => {
  const { verified, derivations } = setup();
  assert((await verified.verify(account(1, 0), PASSWORD)).ok);
  // The account moved on (password, role, activation): the row a login reads carries the new epoch.
  assertEquals(await verified.verify(account(1, 1), PASSWORD), { ok: true, derived: true });
  assertEquals(derivations.n, 2);
  // A login that read the row before the change does not end the newer entry.
  assertEquals((await verified.verify(account(1, 0), PASSWORD)).derived, true);
  assertEquals(await verified.verify(account(1, 1), PASSWORD), { ok: true, derived: false });
  // A new password under the new epoch is checked against the new hash, never the kept digest.
  const other = { id: 1, epoch: 2, hash: await hashPassword("another password", { params: LIGHT }) };
  assertEquals((await verified.verify(other, PASSWORD)).ok, false);
});

Deno.test("a kept success lasts its time to live; forget() and a zero TTL keep nothing", async () => {
  const { verified, derivations, clock } = setup({ ttlMs: 60_000 });
  await verified.verify(account(1), PASSWORD);
  clock.now += 59_999;
  assertEquals((await verified.verify(account(1), PASSWORD)).derived, false);
  clock.now += 1;
  assertEquals((await verified.verify(account(1), PASSWORD)).derived, true);
  assertEquals(derivations.n, 2);
  verified.forget(1);
  assertEquals(verified.size, 0);
  assertEquals((await verified.verify(account(1), PASSWORD)).derived, true);

  const none = setup({ ttlMs: 0 });
  await none.verified.verify(account(1), PASSWORD);
  await none.verified.verify(account(1), PASSWORD);
  assertEquals([none.derivations.n, none.verified.size], [2, 0]);
});

Deno.test("an inactive account's success is not kept", async () => {
  const { verified, derivations } = setup();
  assert((await verified.verify(account(1), PASSWORD, false)).ok);
  assert((await verified.verify(account(1), PASSWORD, false)).ok);
  assertEquals([derivations.n, verified.size], [2, 0]);
});

Deno.test("kept successes are bounded: the oldest check goes first", async () => {
  const { verified, derivations } = setup({ capacity: 2 });
  for (const id of [1, 2, 3]) await verified.verify(account(id), PASSWORD);
  assertEquals(verified.size, 2);
  assertEquals((await verified.verify(account(3), PASSWORD)).derived, false);
  assertEquals((await verified.verify(account(2), PASSWORD)).derived, false);
  assertEquals((await verified.verify(account(1), PASSWORD)).derived, true);
  assertEquals(derivations.n, 4);
});

Deno.test("concurrent checks of one account and password share one derivation; other passwords and accounts do not", async () => {
  const { verified, derivations } = setup();
  const same = await Promise.all(Array.from({ length: 50 }, () => verified.verify(account(1), PASSWORD)));
  assert(same.every((r) => r.ok));
  assertEquals(same.filter((r) => r.derived).length, 1, "one caller derived");
  assertEquals([derivations.n, verified.joined], [1, 49]);

  const wrong = await Promise.all(Array.from({ length: 10 }, () => verified.verify(account(2), "wrong")));
  assert(wrong.every((r) => !r.ok));
  assertEquals(derivations.n, 2, "identical wrong guesses in flight share one derivation too");
  // ...but nothing of it is kept: the next wrong guess derives again.
  await verified.verify(account(2), "wrong");
  assertEquals(derivations.n, 3);

  await Promise.all([
    verified.verify(account(3), PASSWORD),
    verified.verify(account(3), "wrong"),
    verified.verify(account(4), PASSWORD),
  ]);
  assertEquals(derivations.n, 6);
});

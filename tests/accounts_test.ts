/**
 * lib/accounts.ts without a database: accounts held in memory, loaded once,
 * kept current by notifications (a stand-in for LISTEN) or by polling, older
 * news never winning over newer, watchers and subscribers told of changes.
 */
import { Hono } from "hono";
import { assert, assertEquals } from "./_assert.ts";
import {
  ACCOUNT_CHANNEL,
  type AccountChange,
  Accounts,
  type AccountState,
  speaksFor,
} from "../lib/accounts.ts";
import type { Sql } from "../lib/db.ts";
import type { AuthEnv } from "../routes/env.ts";
import { roleGuard } from "../routes/middleware/require_role.ts";
import { onError } from "../routes/problem.ts";
import { memorySource } from "./_accounts.ts";
import { bearer, TEST_TOKEN_KEY, until } from "./_fixture.ts";

const admin = (epoch = 0, active = true): AccountState => ({ epoch, active, role: "ADMIN" });

/** A stand-in for postgres.js `listen`: `notify` delivers a payload, `reconnect` calls onlisten again. */
function fakeListen() {
  let deliver: (payload: string) => void = () => {};
  let onlisten: () => void = () => {};
  const channels: string[] = [];
  const sql = {
    listen(channel: string, fn: (payload: string) => void, listened: () => void) {
      channels.push(channel);
      deliver = fn;
      onlisten = listened;
      listened();
      return Promise.resolve({ state: {}, unlisten: () => Promise.resolve() });
    },
  } as unknown as Sql;
  return {
    sql,
    channels,
    notify: (payload: unknown) => deliver(JSON.stringify(payload)),
    reconnect: () => onlisten(),
  };
}

Deno.test("a token speaks for its account only while it is active, in the token's role, at the token's epoch", () => {
  assert(speaksFor(admin(3), { role: "ADMIN", epoch: 3 }));
  assert(!speaksFor(admin(3, false), { role: "ADMIN", epoch: 3 }), "deactivated");
  assert(!speaksFor({ epoch: 3, active: true, role: "INSTRUCTOR" }, { role: "ADMIN", epoch: 3 }), "demoted");
  assert(!speaksFor(admin(4), { role: "ADMIN", epoch: 3 }), "changed since");
  assert(!speaksFor(admin(3), { role: "ADMIN", epoch: 4 }), "an epoch it never had");
});

Deno.test("an account is loaded once (concurrent first requests share the query), then read from memory", async () => {
  const source = memorySource(new Map([[7, admin()]]));
  const accounts = new Accounts(source);
  assertEquals(accounts.get(7), undefined);
  const loads = await Promise.all(Array.from({ length: 5 }, () => accounts.load(7)));
  assertEquals(loads, Array(5).fill(admin()));
  assertEquals(source.asked, 1);
  for (let i = 0; i < 1000; i++) assertEquals(accounts.get(7), admin());
  assertEquals(source.asked, 1, "no query once held");
  assertEquals(await accounts.load(8), null, "no such user");
  assertEquals(accounts.size, 1, "nobody is not held");
});

Deno.test("the route guard asks the database once per account, however many requests follow", async () => {
  const source = memorySource(new Map([[7, admin()]]));
  const app = new Hono<AuthEnv>();
  app.onError(onError);
  app.get("/x", roleGuard(TEST_TOKEN_KEY, new Accounts(source))("ADMIN"), (c) => c.text("ok"));
  const headers = await bearer(7, "ADMIN");
  for (let i = 0; i < 200; i++) assertEquals((await app.request("/x", { headers })).status, 200);
  assertEquals(source.asked, 1);
});

Deno.test("a notification updates a held account and tells watchers and subscribers; older news is ignored", async () => {
  const accounts = new Accounts(memorySource(new Map([[7, admin(2)]])));
  const listen = fakeListen();
  await accounts.start(listen.sql);
  assertEquals([accounts.mode, listen.channels], ["listen", [ACCOUNT_CHANNEL]]);
  await accounts.load(7);
  const changes: AccountChange[] = [];
  accounts.subscribe((c) => changes.push(c));
  let ended = 0;
  accounts.watch(7, 2, () => ended++);

  listen.notify({ id: 7, epoch: 1, active: true, role: "ADMIN" });
  listen.notify({ id: 7, epoch: 2, active: true, role: "ADMIN" });
  assertEquals(
    [accounts.get(7), changes.length, ended],
    [admin(2), 0, 0],
    "old news and repeats change nothing",
  );
  listen.notify({ id: 7, epoch: 3, active: false, role: "ADMIN" });
  assertEquals(accounts.get(7), admin(3, false));
  assertEquals(changes, [{ userId: 7, state: admin(3, false) }]);
  assertEquals(ended, 1);
  listen.notify({ id: 7, epoch: 4, active: true, role: "ADMIN" });
  assertEquals(ended, 1, "a watcher is told once");
  listen.notify({ id: 7, deleted: true });
  assertEquals([accounts.get(7), changes.at(-1)], [undefined, { userId: 7, state: null }]);
  listen.notify("not json at all");
  listen.notify({ id: "7", epoch: 9 });
  assertEquals(changes.length, 3, "what is not ours is ignored");
  await accounts.stop();
});

Deno.test("every LISTEN (re)connection compares the held accounts again: notifications sent meanwhile were lost", async () => {
  const states = new Map([[7, admin()], [8, admin()]]);
  const accounts = new Accounts(memorySource(states));
  const listen = fakeListen();
  await accounts.start(listen.sql);
  await accounts.load(7);
  await accounts.load(8);
  states.set(7, admin(1, false)); // changed while the connection was down: no notification came
  states.delete(8);
  listen.reconnect();
  await until("the reconnection's comparison applied", () => accounts.get(7)?.epoch === 1, 1000);
  assertEquals([accounts.get(7), accounts.get(8)], [admin(1, false), undefined]);
  await accounts.stop();
});

Deno.test("a change heard while an account is being loaded makes the load ask again", async () => {
  const states = new Map([[7, admin()]]);
  const source = memorySource(states);
  let release: () => void = () => {};
  const first = new Promise<void>((r) => release = r);
  const slow = {
    async changed(known: ReadonlyMap<number, number>) {
      const answer = await source.changed(known);
      if (source.asked === 1) await first; // the first answer (epoch 0) arrives after the change below
      return answer;
    },
  };
  const accounts = new Accounts(slow);
  const listen = fakeListen();
  await accounts.start(listen.sql);
  const loading = accounts.load(7);
  states.set(7, admin(1, false));
  listen.notify({ id: 7, epoch: 1, active: false, role: "ADMIN" });
  release();
  assertEquals(await loading, admin(1, false));
  assertEquals(source.asked, 2);
  await accounts.stop();
});

Deno.test("without LISTEN the held accounts are compared on a timer; a watcher of a stale epoch is told at once", async () => {
  const states = new Map([[7, admin()], [9, admin(5)]]);
  const source = memorySource(states);
  const accounts = new Accounts(source, { pollMs: 20 });
  await accounts.start(null);
  assertEquals(accounts.mode, "poll");
  const asked = source.asked;
  await new Promise((r) => setTimeout(r, 60));
  assertEquals(source.asked, asked, "nothing held, nothing asked");
  await accounts.load(7);
  let ended = false;
  accounts.watch(7, 0, () => ended = true);
  states.set(7, { epoch: 1, active: true, role: "INSTRUCTOR" });
  await until("the poll saw the demotion", () => accounts.get(7)?.role === "INSTRUCTOR", 1000);
  assert(ended, "the watcher was told");

  let stale = false;
  accounts.watch(9, 4, () => stale = true);
  await until("a watcher of an epoch already past is told", () => stale, 1000);
  await accounts.stop();
  assertEquals(accounts.mode, "idle");
});

Deno.test("beyond its capacity the oldest account nobody watches goes first, and is loaded again when seen", async () => {
  const states = new Map([1, 2, 3, 4].map((id) => [id, admin()] as const));
  const source = memorySource(states);
  const accounts = new Accounts(source, { capacity: 2 });
  await accounts.load(1);
  const unwatch = accounts.watch(1, 0, () => {});
  await accounts.load(2);
  await accounts.load(3);
  assertEquals([1, 2, 3].map((id) => accounts.get(id) !== undefined), [true, false, true], "1 is watched");
  unwatch();
  await accounts.load(4);
  assertEquals([1, 3, 4].map((id) => accounts.get(id) !== undefined), [false, true, true]);
  assertEquals(await accounts.load(1), admin(), "loaded again");
});

/**
 * The database watch on its own: a request stuck waiting (queries sitting in
 * the client's queue while the server is gone, no error raised) is cut once a
 * probe finds the database unreachable, and only then.
 */
import { assert, assertEquals } from "./_assert.ts";
import { connectionProbe, DatabaseWatch } from "../lib/db_watch.ts";
import { unavailability } from "../lib/retry.ts";
import { notPostgresPeers } from "./_peers.ts";

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
const tooMany = () => Object.assign(new Error("sorry, too many clients already"), { code: "53300" });

/** Begins a wait and resolves with how long it took to be cut, or null if it was not within `ms`. */
async function cutWithin(watch: DatabaseWatch, ms: number): Promise<number | null> {
  const started = performance.now();
  const wait = watch.begin();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    wait.cut.then(() => performance.now() - started),
    new Promise<null>((r) => timer = setTimeout(() => r(null), ms)),
  ]);
  clearTimeout(timer);
  wait.done();
  return result;
}

Deno.test("a request stuck on a database that went away silently is cut once a probe is refused", async () => {
  let up = false;
  let probes = 0;
  const watch = new DatabaseWatch({
    probe: () => {
      probes++;
      return up ? Promise.resolve() : Promise.reject(refused());
    },
    suspectAfterMs: 200,
    probeIntervalMs: 20,
  });
  try {
    const tookMs = await cutWithin(watch, 3000);
    assert(tookMs !== null, "the stuck request was never cut");
    assert(tookMs >= 200 && tookMs < 1000, `cut after ${tookMs.toFixed(0)} ms`);
    assertEquals(watch.down?.reason, "connect ECONNREFUSED 127.0.0.1:5432");
    up = true;
    for (let i = 0; i < 100 && watch.down; i++) await new Promise((r) => setTimeout(r, 10));
    assertEquals(watch.down, null, "the probe brings it back");
    assert(probes >= 2);
  } finally {
    watch.stop();
  }
});

Deno.test("a slow request on a database that answers, or is only out of connections, is not cut", async () => {
  for (const probe of [() => Promise.resolve(), () => Promise.reject(tooMany())]) {
    let probes = 0;
    const watch = new DatabaseWatch({
      probe: () => {
        probes++;
        return probe();
      },
      suspectAfterMs: 100,
    });
    try {
      assertEquals(await cutWithin(watch, 600), null);
      assertEquals(watch.down, null);
      assert(probes >= 1, "it did look");
    } finally {
      watch.stop();
    }
  }
});

Deno.test("short requests never make the watch probe", async () => {
  let probes = 0;
  const watch = new DatabaseWatch({ probe: () => Promise.resolve(void probes++), suspectAfterMs: 200 });
  try {
    for (let i = 0; i < 20; i++) {
      const wait = watch.begin();
      await new Promise((r) => setTimeout(r, 10));
      wait.done();
    }
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(probes, 0);
  } finally {
    watch.stop();
  }
});

Deno.test("the probe settles as unreachable on a peer that is not PostgreSQL, so a stuck request is cut", async () => {
  const { peers, close } = notPostgresPeers();
  try {
    for (const peer of peers) {
      const probe = connectionProbe(`postgres://lg:pw@127.0.0.1:${peer.port}/levelguard`, 1);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        probe().then(() => "answered", (err: unknown) => err),
        new Promise<string>((r) => timer = setTimeout(() => r("still waiting after 30 s"), 30_000)),
      ]);
      clearTimeout(timer);
      assert(outcome instanceof Error, `${peer.name}: ${outcome}`);
      assertEquals(unavailability(outcome), "down", `${peer.name}: ${outcome.message}`);

      // The watch of a running server, its database moved behind such a peer: the wait is cut.
      const watch = new DatabaseWatch({ probe, suspectAfterMs: 100, probeIntervalMs: 50 });
      try {
        assert(await cutWithin(watch, 30_000) !== null, `${peer.name}: the stuck request was never cut`);
        assert(watch.down, peer.name);
      } finally {
        watch.stop();
      }
    }
  } finally {
    await close();
  }
});

/** Requests in flight (lib/serve.ts), no server: a shutdown's cut answers those still running, and only those. */
import { assertEquals } from "./_assert.ts";
import { type Handler, InFlight } from "../lib/serve.ts";

const INFO = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } } as Deno.ServeHandlerInfo<
  Deno.NetAddr
>;

Deno.test("a cut answers every request still running with the shutdown's answer; finished ones keep theirs", async () => {
  const inFlight = new InFlight((req) => new Response(`cut ${new URL(req.url).pathname}`, { status: 503 }));
  let finishSlow = (_: Response) => {};
  const handler: Handler = (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/sync") return new Response("sync");
    if (path === "/fast") return Promise.resolve(new Response("fast"));
    if (path === "/slow") return new Promise((r) => finishSlow = r);
    return new Promise(() => {}); // never answers
  };
  const wrapped = inFlight.wrap(handler);
  const sync = wrapped(new Request("http://x/sync"), INFO) as Response;
  const fast = await wrapped(new Request("http://x/fast"), INFO);
  const slow = wrapped(new Request("http://x/slow"), INFO);
  const stuck = wrapped(new Request("http://x/stuck"), INFO);
  assertEquals([await sync.text(), await fast.text()], ["sync", "fast"]);
  assertEquals(inFlight.size, 2, "the slow and the stuck one are in flight");

  assertEquals(inFlight.cut(), 2);
  const [slowAnswer, stuckAnswer] = await Promise.all([slow, stuck]);
  assertEquals([slowAnswer.status, await slowAnswer.text()], [503, "cut /slow"]);
  assertEquals([stuckAnswer.status, await stuckAnswer.text()], [503, "cut /stuck"]);
  // The handler's own answer, when it comes, goes nowhere.
  finishSlow(new Response("late"));
  assertEquals([inFlight.size, inFlight.cut()], [0, 0]);
});

Deno.test("a handler that fails still fails (the runtime's own error answer), and is no longer in flight", async () => {
  const inFlight = new InFlight(() => new Response(null, { status: 503 }));
  const wrapped = inFlight.wrap(() => Promise.reject(new Error("boom")));
  let failed = "";
  await (wrapped(new Request("http://x/"), INFO) as Promise<Response>).catch((err) => failed = err.message);
  assertEquals([failed, inFlight.size], ["boom", 0]);
});

/** Which part of /admin/health htmx asks for and the state it shows, without a database or an app. */
import { assertEquals } from "./_assert.ts";
import { currentPage, healthPageParams, pageQuery, partRequested, partState } from "../routes/admin/parts.ts";

const PAGE = "http://localhost/admin/health?window=7d&kind=MISSING_LICENSE&cursor=abc";

/** The headers htmx sends for a part: its target, the page's URL, and what triggered it. */
function htmx(target: string, current?: string, trigger?: string): Headers {
  return new Headers({
    "hx-request": "true",
    "hx-target": target,
    ...(current ? { "hx-current-url": current } : {}),
    ...(trigger ? { "hx-trigger": trigger } : {}),
  });
}

Deno.test("a part is asked for by htmx's target, except when htmx restores history (which needs the page)", () => {
  assertEquals(partRequested(htmx("live")), "live");
  assertEquals(partRequested(new Headers()), null, "a browser's request is the page");
  assertEquals(partRequested(new Headers({ "hx-target": "live" })), null, "HX-Target alone is not htmx");
  const restore = htmx("violations-part");
  restore.set("hx-history-restore-request", "true");
  assertEquals(partRequested(restore), null);
});

Deno.test("the page htmx asked from is its HX-Current-URL; a header that is no URL is none", () => {
  assertEquals(currentPage(htmx("live", PAGE)), {
    path: "/admin/health",
    params: { window: "7d", kind: "MISSING_LICENSE", cursor: "abc" },
  });
  assertEquals(currentPage(htmx("live", "::not a url::")), null);
  assertEquals(currentPage(htmx("live")), null);
  assertEquals(healthPageParams(htmx("live", PAGE)), {
    window: "7d",
    kind: "MISSING_LICENSE",
    cursor: "abc",
  });
  assertEquals(healthPageParams(htmx("live", "http://localhost/admin/students/3?kind=MISSING_LICENSE")), {});
});

Deno.test("a part refreshing itself shows the page URL's state plus what it saw; nothing is pushed", () => {
  assertEquals(partState(htmx("live", PAGE, "live"), { seen: "12", kind: "ORPHAN_LICENSE" }, "live"), {
    params: { window: "7d", kind: "MISSING_LICENSE", cursor: "abc", seen: "12" },
  });
  // The table's own refresh, with a form that still holds another kind: the URL wins.
  assertEquals(
    partState(
      htmx("violations-part", PAGE, "violations-part"),
      { kind: "ORPHAN_LICENSE" },
      "violations-part",
    ),
    { params: { window: "7d", kind: "MISSING_LICENSE", cursor: "abc" } },
  );
});

Deno.test("a link in a part changes only what that part owns and pushes the whole state", () => {
  // The chart's window keeps the table's filter and page.
  assertEquals(partState(htmx("history-part", PAGE), { window: "1h" }, "history-part"), {
    params: { kind: "MISSING_LICENSE", cursor: "abc", window: "1h" },
    push: "/admin/health?window=1h&kind=MISSING_LICENSE&cursor=abc",
  });
  // A filter keeps the window and starts at page one; the default window is left out of the URL.
  assertEquals(
    partState(
      htmx("violations-part", PAGE),
      { kind: "LEVEL_MISMATCH", specialization: "" },
      "violations-part",
    )
      .push,
    "/admin/health?window=7d&kind=LEVEL_MISMATCH",
  );
  assertEquals(
    partState(htmx("history-part", "http://localhost/admin/health"), { window: "24h" }, "history-part").push,
    "/admin/health",
  );
});

Deno.test("without the health page's URL the request's own query is the state", () => {
  for (
    const current of [undefined, "::not a url::", "http://localhost/admin/students/3?kind=MISSING_LICENSE"]
  ) {
    assertEquals(partState(htmx("live", current, "live"), { seen: "0" }, "live"), { params: { seen: "0" } });
  }
});

Deno.test("the page's URL state falls back to defaults for values it does not know", () => {
  const q = pageQuery.parse({
    window: "forever",
    kind: "NOPE",
    specialization: "x",
    cursor: "a b",
    seen: "x",
  });
  assertEquals([q.window, q.kind, q.specialization, q.cursor, q.seen], [
    "24h",
    undefined,
    undefined,
    undefined,
    undefined,
  ]);
  assertEquals(pageQuery.parse({ window: "1h", repaired: "7" }), { window: "1h", repaired: 7 });
});

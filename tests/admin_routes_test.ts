/**
 * The dashboard's routes without a browser: sign-in, sessions, CSRF, roles,
 * pages and their htmx parts, CSV, repair, and escaping. (tests/dashboard_test.ts
 * drives the same pages in real browsers.)
 */
import { Hono } from "hono";
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { rolloutBucket } from "../lib/canary/bucket.ts";
import { rolloutState, setRollout } from "../lib/canary/rollout.ts";
import { CheckEvents } from "../lib/integrity/events.ts";
import { seed } from "../lib/seed.ts";
import { createSession, endSession, findSession, sessionLive } from "../lib/sessions.ts";
import { liveEvents, STREAMS_PER_ADMIN } from "../routes/admin/events.ts";
import type { TestDatabase } from "./_db.ts";
import { type TestApp, withTestApp } from "./_fixture.ts";

const PASSWORD = "admin-password-1";

/** A browser-like client of the app: keeps cookies, sends Origin on POSTs. */
function client(app: TestApp["app"], origin = "http://localhost") {
  const jar = new Map<string, string>();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const remember = (res: Response) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const [name, ...rest] = pair.split("=");
      const value = rest.join("=");
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line) || value === "") jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  };
  return {
    jar,
    async get(path: string, headers: Record<string, string> = {}) {
      return remember(
        await app.request(`${origin}${path}`, { headers: { cookie: cookieHeader(), ...headers } }),
      );
    },
    async post(path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
      return remember(
        await app.request(`${origin}${path}`, {
          method: "POST",
          headers: {
            cookie: cookieHeader(),
            origin,
            "content-type": "application/x-www-form-urlencoded",
            ...headers,
          },
          body: new URLSearchParams(form),
        }),
      );
    },
  };
}

type Client = ReturnType<typeof client>;

/** The hidden `_csrf` of the first form in an HTML page. */
function csrfIn(html: string): string {
  return /name="_csrf" value="([^"]+)"/.exec(html)![1];
}

async function signIn(c: Client, email = "admin@staging.example.com", password = PASSWORD) {
  const page = await (await c.get("/admin/login")).text();
  return await c.post("/admin/login", { _csrf: csrfIn(page), email, password, next: "/admin/health" });
}

async function seeded(db: TestDatabase) {
  await seed(db.sql, {
    students: 60,
    desyncRate: 0.05,
    adminEmail: "admin@staging.example.com",
    adminPassword: PASSWORD,
    studentPassword: "student-password-1",
  });
}

Deno.test("an unauthenticated visit redirects to sign-in and comes back to the same page afterwards", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const c = client(app);
    const visit = await c.get("/admin/health?kind=MISSING_LICENSE");
    assertEquals(visit.status, 302);
    assertEquals(
      visit.headers.get("location"),
      "/admin/login?next=%2Fadmin%2Fhealth%3Fkind%3DMISSING_LICENSE",
    );
    const form = await (await c.get(visit.headers.get("location")!)).text();
    assertMatch(form, /name="next" value="\/admin\/health\?kind=MISSING_LICENSE"/);
    const signedIn = await c.post("/admin/login", {
      _csrf: csrfIn(form),
      email: "ADMIN@staging.example.com",
      password: PASSWORD,
      next: "/admin/health?kind=MISSING_LICENSE",
    });
    assertEquals([signedIn.status, signedIn.headers.get("location")], [
      303,
      "/admin/health?kind=MISSING_LICENSE",
    ]);
    const cookie = signedIn.headers.getSetCookie().find((h) => h.startsWith("lg_session="))!;
    assertMatch(cookie, /HttpOnly/i);
    assertMatch(cookie, /SameSite=Lax/i);
    assert(!/Secure/i.test(cookie), "plain http://localhost must work: no Secure, no __Host- prefix");
    const page = await c.get("/admin/health");
    assertEquals(page.status, 200);
    assertMatch(await page.text(), /Integrity health/);
    // Only our own pages are places to come back to.
    const elsewhere = await c.post("/admin/login", {
      _csrf: csrfIn(form),
      email: "admin@staging.example.com",
      password: PASSWORD,
      next: "https://evil.example/",
    });
    assertEquals(elsewhere.headers.get("location"), "/admin/health");
  }));

Deno.test("over TLS the session cookie is __Host- prefixed and Secure", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const c = client(app, "https://levelguard.example");
    const res = await signIn(c);
    assertEquals(res.status, 303);
    const cookie = res.headers.getSetCookie().find((h) => h.startsWith("__Host-lg_session="));
    assert(cookie, res.headers.getSetCookie().join(" | "));
    assertMatch(cookie, /Secure/);
    assertMatch(cookie, /Path=\//);
    assertEquals((await c.get("/admin/health")).status, 200);
  }));

Deno.test("a wrong password is the same message as for an unknown email; a student gets a clear 403", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const c = client(app);
    const wrong = await signIn(c, "admin@staging.example.com", "nope-nope");
    assertEquals(wrong.status, 401);
    assertMatch(await wrong.text(), /Invalid email or password/);
    const unknown = await signIn(c, "nobody@staging.example.com", "nope-nope");
    assertEquals(unknown.status, 401);
    const student = await signIn(c, "student1@academy.example.com", "student-password-1");
    assertEquals(student.status, 403);
    assertMatch(await student.text(), /Admins only/);
    assertEquals(c.jar.has("lg_session"), false, "no session for a non-admin");
  }));

Deno.test("after five failed sign-ins the form says to wait (429, Retry-After), also for the right password", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const c = client(app);
    for (let i = 0; i < 5; i++) {
      assertEquals((await signIn(c, "admin@staging.example.com", "nope-nope")).status, 401);
    }
    for (const password of ["nope-nope", PASSWORD]) {
      const res = await signIn(c, "admin@staging.example.com", password);
      assertEquals(res.status, 429);
      const wait = Number(res.headers.get("retry-after"));
      assert(Number.isInteger(wait) && wait >= 1 && wait <= 30, `Retry-After ${wait}`);
      const page = await res.text();
      assertMatch(
        page,
        new RegExp(`Too many failed sign-ins for this account\\. Wait ${wait} s, then try again\\.`),
      );
      assertMatch(page, /name="email" [^>]*value="admin@staging\.example\.com"/);
    }
    assertEquals(c.jar.has("lg_session"), false);
  }));

Deno.test("POSTs without the session's CSRF token, or from another origin, are refused and change nothing", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const c = client(app);
    await signIn(c);
    const page = await (await c.get("/admin/health")).text();
    const token = csrfIn(page);
    assertEquals((await c.post("/admin/health/check", {})).status, 403);
    assertEquals((await c.post("/admin/health/check", { _csrf: "x".repeat(43) })).status, 403);
    const other = await app.request("http://localhost/admin/health/check", {
      method: "POST",
      headers: {
        cookie: `lg_session=${c.jar.get("lg_session")}`,
        origin: "https://evil.example",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ _csrf: token }),
    });
    assertEquals(other.status, 403, "Hono's Origin check");
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks`;
    assertEquals(n, 0, "no check ran");
    // With the token (form field or htmx header) it works.
    assertEquals((await c.post("/admin/health/check", { _csrf: token })).status, 303);
    assertEquals(
      (await c.post("/admin/health/check", {}, { "x-csrf-token": token, "hx-request": "true" })).status,
      200,
    );
    // The sign-in form needs its own token too.
    const fresh = client(app);
    assertEquals(
      (await fresh.post("/admin/login", { email: "admin@staging.example.com", password: PASSWORD })).status,
      403,
    );
  }));

Deno.test("an unsafe request without this site's Origin is 403 saying so: a problem for curl, a page for a browser", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const missing =
      /must carry an Origin header from this site \(http:\/\/localhost\); this request has none/;
    // curl -X DELETE /admin/health: no Origin, no Content-Type.
    const curl = await app.request("http://localhost/admin/health", { method: "DELETE" });
    assertEquals(curl.status, 403);
    assertMatch(curl.headers.get("content-type") ?? "", /^application\/problem\+json/);
    const problem = await curl.json();
    assertEquals([problem.status, problem.title], [403, "Forbidden"]);
    assertMatch(problem.detail, /^A DELETE to the dashboard /);
    assertMatch(problem.detail, missing);
    // With this site's Origin the method check answers: the path serves GET (and HEAD) only.
    const sameSite = await app.request("http://localhost/admin/health", {
      method: "DELETE",
      headers: { origin: "http://localhost" },
    });
    assertEquals(sameSite.status, 405);
    assertEquals(sameSite.headers.get("allow"), "GET, HEAD");
    await sameSite.body?.cancel();

    // A sign-in posted without Origin: the same detail, as a page for a browser.
    const c = client(app);
    const form = await (await c.get("/admin/login")).text();
    const fields = { _csrf: csrfIn(form), email: "admin@staging.example.com", password: PASSWORD };
    const withoutOrigin = (headers: Record<string, string>) =>
      app.request("http://localhost/admin/login", {
        method: "POST",
        headers: {
          cookie: [...c.jar].map(([k, v]) => `${k}=${v}`).join("; "),
          "content-type": "application/x-www-form-urlencoded",
          ...headers,
        },
        body: new URLSearchParams(fields),
      });
    const page = await withoutOrigin({ accept: "text/html,application/xhtml+xml" });
    assertEquals(page.status, 403);
    assertMatch(page.headers.get("content-type") ?? "", /^text\/html/);
    assertMatch(await page.text(), /A POST to the dashboard must carry an Origin header from this site/);
    const api = await withoutOrigin({});
    assertEquals(api.status, 403);
    assertMatch(api.headers.get("content-type") ?? "", /^application\/problem\+json/);
    assertMatch((await api.json()).detail, missing);
    // Another site's Origin is named as such.
    const foreign = await c.post("/admin/login", fields, { origin: "https://evil.example" });
    assertEquals(foreign.status, 403);
    assertMatch((await foreign.json()).detail, /must come from this site \(Origin http:\/\/localhost\)/);
    assertEquals(c.jar.has("lg_session"), false, "no session was made");
    // The same form with this site's Origin signs in.
    assertEquals((await c.post("/admin/login", fields)).status, 303);
  }));

Deno.test("signing out ends the session; an expired session and a deactivated admin are out on the next request", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const c = client(app);
    await signIn(c);
    const token = csrfIn(await (await c.get("/admin/health")).text());
    const cookie = c.jar.get("lg_session")!;
    assertEquals((await c.post("/admin/logout", { _csrf: token })).status, 303);
    const replay = await app.request("http://localhost/admin/health", {
      headers: { cookie: `lg_session=${cookie}` },
    });
    assertEquals(replay.status, 302, "the old cookie is worthless after sign-out");

    await signIn(c);
    await db.sql`UPDATE admin_sessions SET expires_at = now() - interval '1 second'`;
    assertEquals((await c.get("/admin/health")).status, 302);

    await signIn(c);
    assertEquals((await c.get("/admin/health")).status, 200);
    await db.sql`UPDATE users SET is_active = false WHERE role = 'ADMIN'`;
    assertEquals((await c.get("/admin/health")).status, 302);
    const htmx = await c.get("/admin/health", { "hx-request": "true", "hx-target": "live" });
    assertEquals([htmx.status, htmx.headers.get("hx-redirect")?.startsWith("/admin/login")], [401, true]);
  }));

Deno.test("each part is sent alone to htmx and as the whole page otherwise (reload, back, no JavaScript)", () =>
  withTestApp(async ({ db, app, deps }) => {
    await seeded(db);
    await deps.runner.run("manual");
    const c = client(app);
    await signIn(c);
    const full = await (await c.get("/admin/health?kind=MISSING_LICENSE")).text();
    for (const id of ["live", "history-part", "violations-part", "repair-panel"]) {
      assertMatch(full, new RegExp(`id="${id}"`));
    }
    assertMatch(full, /<!DOCTYPE html>/);
    // A part is the content of its container (swapped as innerHTML), made by the same component.
    const parts: [string, RegExp][] = [
      ["live", /^<input type="hidden" class="state" name="seen"/],
      ["history-part", /^<input type="hidden" class="state" name="window" value="24h"><section id="history"/],
      ["violations-part", /^<section id="violations"/],
    ];
    for (const [target, start] of parts) {
      const part = await (await c.get("/admin/health?kind=MISSING_LICENSE", {
        "hx-request": "true",
        "hx-target": target,
      }))
        .text();
      assert(!part.includes("<!DOCTYPE html>"), `${target} is a part`);
      assertMatch(part, start);
      assert(full.includes(part.slice(0, 60)), `the page holds the same ${target}`);
    }
    // A poll that has not seen the latest check gets the chart and the table out of band.
    const [{ id: latest }] = await db.sql`SELECT id FROM latest_full_check`;
    const current =
      await (await c.get(`/admin/health?seen=${latest}`, { "hx-request": "true", "hx-target": "live" }))
        .text();
    assert(!current.includes("hx-swap-oob"), "nothing more when it is current");
    const stale = await (await c.get("/admin/health?seen=0", { "hx-request": "true", "hx-target": "live" }))
      .text();
    assertMatch(stale, /<div id="history-part" hx-swap-oob="innerHTML">/);
    assertMatch(stale, /<div id="violations-part" hx-swap-oob="innerHTML">/);
    const restore = await c.get("/admin/health", {
      "hx-request": "true",
      "hx-target": "violations-part",
      "hx-history-restore-request": "true",
    });
    assertMatch(await restore.text(), /<!DOCTYPE html>/);
    // The student page, and a student that does not exist.
    const student = await c.get("/admin/students/3");
    assertEquals(student.status, 200);
    assertMatch(await student.text(), /XP ledger/);
    assertEquals((await c.get("/admin/students/999999")).status, 404);
    assertEquals((await c.get("/admin/students/abc")).status, 404);
  }));

Deno.test("the CSV has every filtered violation of the latest check, streamed", () =>
  withTestApp(async ({ db, app, deps }) => {
    await seeded(db);
    const check = await deps.runner.run("manual");
    const c = client(app);
    await signIn(c);
    const res = await c.get("/admin/health/violations.csv?kind=MISSING_LICENSE");
    assertEquals(res.headers.get("content-type"), "text/csv; charset=utf-8");
    const lines = (await res.text()).trim().split("\n");
    assertEquals(lines[0], "check_id,kind,student_id,specialization_id,details");
    assertEquals(lines.length - 1, check.counts_by_kind!.MISSING_LICENSE);
    assert(lines.slice(1).every((l) => l.startsWith(`${check.id},MISSING_LICENSE,`)));
  }));

Deno.test("repair from the dashboard: a preview that writes nothing, then the repair and a fresh check", () =>
  withTestApp(async ({ db, app, deps }) => {
    await seeded(db);
    const before = await deps.runner.run("manual");
    assert(before.violation_count! > 0);
    const c = client(app);
    await signIn(c);
    const token = csrfIn(await (await c.get("/admin/health")).text());
    const preview = await c.post("/admin/health/repair/preview", { _csrf: token }, { "hx-request": "true" });
    const html = await preview.text();
    assertMatch(html, /would be re-synced/);
    assertEquals(
      (await db.sql`SELECT count(*)::int AS n FROM audit_log`)[0].n,
      0,
      "the preview wrote nothing",
    );
    const done = await c.post("/admin/health/repair", { _csrf: token, return_to: "/admin/health" });
    assertEquals(done.status, 303);
    assertMatch(done.headers.get("location")!, /^\/admin\/health\?repaired=\d+$/);
    const [after] = await db
      .sql`SELECT trigger, violation_count FROM integrity_checks ORDER BY id DESC LIMIT 1`;
    assertEquals([after.trigger, after.violation_count], ["repair", 0]);
    assertMatch(await (await c.get(done.headers.get("location")!)).text(), /Repair #\d+ is done/);
  }));

Deno.test("a <script> stored in a user's name is shown as text", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const evil = `<script>alert(1)</script><img src=x onerror="alert(2)">`;
    await db.sql`UPDATE users SET full_name = ${evil} WHERE id = 2`;
    const c = client(app);
    await signIn(c);
    const html = await (await c.get("/admin/students/2")).text();
    assert(!html.includes("<script>alert(1)"), "not markup");
    assert(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"), "escaped text");
    assert(!html.includes('onerror="alert'), "no attribute injection");
  }));

Deno.test("pages carry the strict CSP and no inline script or style", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const c = client(app);
    await signIn(c);
    for (const path of ["/admin/login", "/admin/health", "/admin/students/3"]) {
      const res = await c.get(path);
      const csp = res.headers.get("content-security-policy")!;
      assert(!/unsafe-inline|unsafe-eval/.test(csp), csp);
      const html = await res.text();
      assert(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html), `${path} has an inline script`);
      assert(!/\sstyle=|<style/.test(html), `${path} has an inline style`);
      assert(!/\son[a-z]+=/.test(html), `${path} has an inline handler`);
    }
    const css = await c.get("/static/css/dashboard.css");
    assertEquals([css.status, css.headers.get("cache-control")], [
      200,
      "public, max-age=31536000, immutable",
    ]);
    await css.body?.cancel();
    assertEquals((await c.get("/static/vendor.ts")).status, 404, "only assets are served");
  }));

Deno.test("GET / sends a browser to the dashboard (the sign-in page first)", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const res = await app.request("http://localhost/");
    assertEquals([res.status, res.headers.get("location")], [302, "/admin/health"]);
    const c = client(app);
    await signIn(c);
    const signedIn = await c.get("/");
    assertEquals([signedIn.status, signedIn.headers.get("location")], [302, "/admin/health"]);
  }));

Deno.test("a part refreshing itself shows the page URL's filters and window; a link in a part pushes the whole state", () =>
  withTestApp(async ({ db, app, deps }) => {
    await seeded(db);
    const check = await deps.runner.run("manual");
    const missing = check.counts_by_kind!.MISSING_LICENSE;
    assert(missing > 0, "the seed has missing licenses");
    const c = client(app);
    await signIn(c);
    const page = "http://localhost/admin/health?window=7d&kind=MISSING_LICENSE";
    const hx = (target: string, current: string, own = false) => ({
      "hx-request": "true",
      "hx-target": target,
      "hx-current-url": current,
      ...(own ? { "hx-trigger": target } : {}),
    });
    // The live panel's poll sends only what it saw (`seen`); a newer check brings the other parts.
    const live = await c.get("/admin/health?seen=0", hx("live", page, true));
    assertEquals(live.headers.get("hx-push-url"), null, "a refresh pushes nothing");
    const html = await live.text();
    assertMatch(
      html,
      /<div id="history-part" hx-swap-oob="innerHTML"><input type="hidden" class="state" name="window" value="7d">/,
    );
    assertMatch(html, /<option value="MISSING_LICENSE" selected>/);
    assertMatch(html, new RegExp(`${missing} violations? match the filter`));
    const table = html.slice(html.indexOf('<div id="violations-part"'));
    const kinds = [...table.matchAll(/<tr><td>([^<]+)<\/td>/g)].map((m) => m[1]);
    assert(kinds.length > 0 && kinds.every((k) => k === "Missing license"), kinds.join());
    // The table's own refresh, with a form that still holds another kind: the URL wins.
    const refreshed =
      await (await c.get("/admin/health?kind=ORPHAN_LICENSE", hx("violations-part", page, true)))
        .text();
    assertMatch(refreshed, new RegExp(`${missing} violations? match the filter`));

    // A window link keeps the table's filter and page; a filter keeps the window and starts at page one.
    const paged = "http://localhost/admin/health?window=7d&kind=MISSING_LICENSE&cursor=abc";
    const windowed = await c.get("/admin/health?window=1h", hx("history-part", paged));
    assertEquals(
      windowed.headers.get("hx-push-url"),
      "/admin/health?window=1h&kind=MISSING_LICENSE&cursor=abc",
    );
    assertMatch(await windowed.text(), /name="window" value="1h"/);
    const filtered = await c.get(
      "/admin/health?kind=LEVEL_MISMATCH&specialization=",
      hx("violations-part", paged),
    );
    assertEquals(filtered.headers.get("hx-push-url"), "/admin/health?window=7d&kind=LEVEL_MISMATCH");
    await filtered.body?.cancel();

    // A header that is not a URL is ignored, never a 500.
    for (const current of ["::not a url::", "http://localhost/admin/students/3?kind=MISSING_LICENSE"]) {
      const res = await c.get("/admin/health?seen=0", hx("live", current, true));
      assertEquals(res.status, 200);
      assert(!(await res.text()).includes("match the filter"), current);
    }
    const token = csrfIn(await (await c.get("/admin/health")).text());
    const posted = await c.post("/admin/health/check", { _csrf: token }, {
      "hx-request": "true",
      "hx-current-url": "::not a url::",
    });
    assertEquals(posted.status, 200);
    await posted.body?.cancel();
  }));

Deno.test("on a student's page a repair refreshes the pairs too; after the no-JavaScript forms the page says what they did", () =>
  withTestApp(async ({ db, app, deps }) => {
    await seeded(db);
    const first = await deps.runner.run("manual");
    const [pair] = await db.sql<{ student_id: number; specialization_id: string }[]>`
      SELECT p.student_id, p.specialization_id FROM specialization_progress p
      WHERE NOT EXISTS (
        SELECT 1 FROM integrity_violations v WHERE v.check_id = ${first.id} AND v.student_id = p.student_id)
      ORDER BY p.student_id LIMIT 1`;
    const id = pair.student_id;
    const spec = pair.specialization_id;
    const breakIt = () =>
      db.sql`DELETE FROM user_licenses WHERE user_id = ${id} AND specialization_type = ${spec}`;
    await breakIt();
    const c = client(app);
    await signIn(c);
    const studentPage = await (await c.get(`/admin/students/${id}`)).text();
    assertMatch(studentPage, new RegExp(`class="pair pair-bad" aria-label="${spec}"`));
    const token = csrfIn(studentPage);
    const form = { _csrf: token, student_id: String(id), return_to: `/admin/students/${id}` };

    const fromStudent = await (await c.post("/admin/health/repair", form, {
      "hx-request": "true",
      "hx-current-url": `http://localhost/admin/students/${id}`,
    })).text();
    assertMatch(fromStudent, new RegExp(`Repaired: student #${id}`));
    assertMatch(fromStudent, /<section id="pairs" hx-swap-oob="innerHTML">/);
    assertMatch(fromStudent, new RegExp(`class="pair pair-ok" aria-label="${spec}"`));
    assert(!fromStudent.includes("out of sync"), "every pair of this student is in sync again");

    // The same repair from a row of the health page refreshes that page's parts instead.
    await breakIt();
    const fromHealth = await (await c.post("/admin/health/repair", form, {
      "hx-request": "true",
      "hx-current-url": "http://localhost/admin/health",
    })).text();
    assertMatch(fromHealth, /<section id="live" hx-swap-oob="innerHTML">/);
    assert(!fromHealth.includes('id="pairs"'), "no pairs on the health page");

    // Without JavaScript: POST, redirect, and the page shows the result.
    await breakIt();
    const repaired = await c.post("/admin/health/repair", form);
    assertEquals(repaired.status, 303);
    const [, audit] = /repaired=(\d+)$/.exec(repaired.headers.get("location")!)!;
    const after = await (await c.get(repaired.headers.get("location")!)).text();
    assertMatch(after, new RegExp(`Repair done \\(audit entry #${audit}\\)`));
    assertMatch(after, new RegExp(`class="pair pair-ok" aria-label="${spec}"`));
    const checked = await c.post(`/admin/students/${id}/check`, { _csrf: token });
    assertEquals(checked.status, 303);
    assertMatch(checked.headers.get("location")!, new RegExp(`^/admin/students/${id}\\?checked=\\d+$`));
    assertMatch(
      await (await c.get(checked.headers.get("location")!)).text(),
      /Check #\d+: 0 violations in \d+ pairs/,
    );
    // Another check's id (here a full check) or garbage shows nothing.
    for (const q of [`checked=${first.id}`, "checked=abc", "repaired=-1"]) {
      const html = await (await c.get(`/admin/students/${id}?${q}`)).text();
      assert(!/Check #\d+:|Repair done/.test(html), q);
    }
  }));

Deno.test("an admin outside the rollout sets it from the 'not enabled' page (CSRF-checked) and sees no health data", () =>
  withTestApp(async ({ db, app, deps }) => {
    await seeded(db);
    const check = await deps.runner.run("manual");
    const [{ id: adminId }] = await db.sql`SELECT id FROM users WHERE role = 'ADMIN'`;
    await setRollout(db.sql, {
      percent: 0,
      reason: "rolled back",
      source: "cli",
      actorId: null,
      actor: "test",
    });
    deps.rollout.set(0);
    const c = client(app);
    await signIn(c);
    const rate = `${(check.consistency_rate! * 100).toFixed(2)} %`;
    const noHealthData = (html: string) => {
      assertMatch(html, /Not enabled for you yet/);
      for (const leak of [rate, 'id="live"', 'role="meter"', "canary metrics", "sse-connect"]) {
        assert(!html.includes(leak), `${leak} is on the page`);
      }
    };
    const page = await (await c.get("/admin/health")).text();
    noHealthData(page);
    assertMatch(page, /<section class="card narrow" id="rollout-control"/);
    assertMatch(
      page,
      /<form method="post" action="\/admin\/rollout" class="inline"><input type="hidden" name="_csrf"/,
    );
    const token = csrfIn(page);

    assertEquals((await c.post("/admin/rollout", { action: "set", percent: "100" })).status, 403, "no token");
    const advance = await c.post("/admin/rollout", { _csrf: token, action: "advance" });
    assertEquals(advance.status, 403, "advancing needs the canary's figures");
    assertEquals((await rolloutState(db.sql)).percent, 0, "nothing changed");

    // A step that still leaves this admin out: the page says so, still without health data.
    const outside = rolloutBucket(adminId);
    const set = await c.post("/admin/rollout", { _csrf: token, action: "set", percent: String(outside) });
    assertEquals([set.status, set.headers.get("location")], [303, "/admin/health#rollout-control"]);
    const still = await (await c.get("/admin/health")).text();
    noHealthData(still);
    assertMatch(still, new RegExp(`\\(${outside} % of admins have it\\)`));

    const back = await c.post("/admin/rollout", {
      _csrf: token,
      action: "set",
      percent: "100",
      reason: "undo",
    });
    assertEquals([back.status, back.headers.get("location")], [303, "/admin/health#rollout"]);
    const state = await rolloutState(db.sql);
    assertEquals([state.percent, state.last_change?.source, state.last_change?.reason], [
      100,
      "dashboard",
      "undo",
    ]);
    assertMatch(await (await c.get("/admin/health")).text(), /id="live"/);
  }));

/** Reads a response's event stream in the background. */
function readStream(res: Response) {
  const reader = res.body!.getReader();
  const stream = { text: "", done: false, cancel: () => reader.cancel().catch(() => {}) };
  (async () => {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        stream.text += decoder.decode(value, { stream: true });
      }
    } catch { /* cancelled */ }
    stream.done = true;
  })();
  return stream;
}

async function until(what: string, test: () => boolean, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("an admin holds at most four live streams over all their sessions: a fifth closes the oldest", () =>
  withTestApp(async ({ db, app }) => {
    await seeded(db);
    const laptop = client(app);
    const phone = client(app);
    await signIn(laptop);
    await signIn(phone);
    const streams: ReturnType<typeof readStream>[] = [];
    try {
      for (let i = 0; i < STREAMS_PER_ADMIN; i++) {
        const res = await laptop.get("/admin/health/events");
        assertEquals(res.status, 200);
        streams.push(readStream(res));
      }
      await until("the streams said hello", () => streams.every((s) => s.text.includes("event: hello")));
      streams.push(readStream(await phone.get("/admin/health/events")));
      await until("the oldest stream closed", () => streams[0].done);
      assert(!streams[0].text.includes("session-ended"), "a stream too many is not a sign-out");
      await until(
        "the new stream said hello",
        () => streams[STREAMS_PER_ADMIN].text.includes("event: hello"),
      );
      assert(streams.slice(1).every((s) => !s.done), "the others stay open");
    } finally {
      await Promise.all(streams.map((s) => s.cancel()));
    }
  }));

Deno.test("a sign-out on any instance ends that session's live streams within one keep-alive", () =>
  withTestApp(async ({ db }) => {
    await seeded(db);
    const [{ id: userId }] = await db.sql`SELECT id FROM users WHERE role = 'ADMIN'`;
    const sessionKey = async () =>
      (await findSession(db.sql, (await createSession(db.sql, userId, 3600)).token))!.tokenHash;
    const [here, elsewhere, other] = [await sessionKey(), await sessionKey(), await sessionKey()];
    const live = liveEvents(new CheckEvents(), {
      sessionLive: (key) => sessionLive(db.sql, key),
      accountChanged: () => () => {},
      keepAliveMs: 100,
    });
    const app = new Hono();
    app.get("/events", (c) => live.stream(c, { userId, sessionKey: c.req.query("s")!, epoch: 0 }));
    const open = async (key: string) => readStream(await app.request(`/events?s=${key}`));
    const streams = [await open(here), await open(elsewhere), await open(other)];
    try {
      await until("keep-alives flow", () => streams.every((s) => s.text.includes(": keep-alive")));
      // Signed out on this instance: at once.
      await endSession(db.sql, here);
      live.closeSession({ userId, sessionKey: here });
      await until("this instance's sign-out ended its stream", () => streams[0].done, 50);
      // Signed out on another instance (only the database knows): at the next keep-alive.
      const started = Date.now();
      await endSession(db.sql, elsewhere);
      await until("the other instance's sign-out ended the stream", () => streams[1].done, 1000);
      assert(Date.now() - started < 500, `within one keep-alive (${Date.now() - started} ms)`);
      for (const s of streams.slice(0, 2)) assertMatch(s.text, /event: session-ended\n/);
      assertEquals([streams[2].done, live.open], [false, 1], "the session still signed in keeps its stream");
    } finally {
      await Promise.all(streams.map((s) => s.cancel()));
    }
  }));

Deno.test("a browser gets errors under /admin/ as pages (status and headers kept); htmx and API clients get problems", () =>
  withTestApp({ env: { RATE_LIMIT_PER_MINUTE: "3" } }, async ({ app }) => {
    const html = { Accept: "text/html,application/xhtml+xml" };
    const missing = await app.request("/admin/no-such-page", { headers: html });
    assertEquals(missing.status, 404);
    assertMatch(missing.headers.get("content-type") ?? "", /^text\/html/);
    assert(missing.headers.get("content-security-policy"), "the secure headers apply to error pages too");
    const page = await missing.text();
    assertMatch(page, /Not found/);
    assertMatch(page, /No route for GET \/admin\/no-such-page/);

    const partial = await app.request("/admin/no-such-page", { headers: { ...html, "HX-Request": "true" } });
    assertMatch(partial.headers.get("content-type") ?? "", /^application\/problem\+json/);
    assertEquals((await partial.json()).status, 404);

    // The sign-in form is rate limited like the API: past the budget of 3 a minute, a 429 page.
    for (let i = 0; i < 2; i++) await (await app.request("/admin/login", { headers: html })).body?.cancel();
    const limited = await app.request("/admin/login", { headers: html });
    assertEquals(limited.status, 429);
    assert(Number(limited.headers.get("retry-after")) > 0, "Retry-After kept");
    assertMatch(limited.headers.get("content-type") ?? "", /^text\/html/);
    assertMatch(await limited.text(), /Too many requests/);
    const api = await app.request("/admin/login", { headers: { Accept: "application/json" } });
    assertEquals(api.status, 429);
    assertMatch(api.headers.get("content-type") ?? "", /^application\/problem\+json/);
  }));

Deno.test("the dashboard's refusals come from the one error mapping: a page for a browser, a problem naming the field for other clients", () =>
  withTestApp(async ({ db, app, deps }) => {
    await seeded(db);
    await setRollout(db.sql, { percent: 0, reason: "closed", source: "cli", actorId: null, actor: "test" });
    deps.rollout.set(0);
    const c = client(app);
    await signIn(c);
    const token = csrfIn(await (await c.get("/admin/health")).text());
    const html = { accept: "text/html,application/xhtml+xml" };
    const kind = (res: Response) => (res.headers.get("content-type") ?? "").split(";")[0];

    // Advancing from outside the rollout: 403, a page saying why for the browser, a problem otherwise.
    const page = await c.post("/admin/rollout", { _csrf: token, action: "advance" }, html);
    assertEquals([page.status, kind(page)], [403, "text/html"]);
    assertMatch(await page.text(), /<h1>Forbidden<\/h1>[\s\S]*Advancing needs the canary&#39;s verdict/);
    const problem = await c.post("/admin/rollout", { _csrf: token, action: "advance" });
    assertEquals([problem.status, kind(problem)], [403, "application/problem+json"]);
    assertMatch((await problem.json()).detail, /^Advancing needs the canary's verdict/);
    // A percentage that is none: 400 naming the field.
    const bad = await c.post("/admin/rollout", { _csrf: token, action: "set", percent: "250" });
    assertEquals([bad.status, (await bad.json()).errors.map((e: { field: string }) => e.field)], [400, [
      "percent",
    ]]);
    assertEquals((await rolloutState(db.sql)).percent, 0, "nothing changed");

    // A student that does not exist, or a repair form naming one that cannot exist: 404.
    await setRollout(db.sql, { percent: 100, reason: "open", source: "cli", actorId: null, actor: "test" });
    deps.rollout.set(100);
    const missing = await c.get("/admin/students/999999", html);
    assertEquals([missing.status, kind(missing)], [404, "text/html"]);
    assertMatch(await missing.text(), /<h1>Not found<\/h1>[\s\S]*No user with id 999999/);
    const missingProblem = await c.get("/admin/students/abc");
    assertEquals([missingProblem.status, kind(missingProblem)], [404, "application/problem+json"]);
    await missingProblem.body?.cancel();
    const repair = await c.post("/admin/health/repair", { _csrf: token, student_id: "abc" }, {
      "hx-request": "true",
    });
    assertEquals([repair.status, kind(repair)], [404, "application/problem+json"]);
    await repair.body?.cancel();

    // An expired form, posted by a browser: a page saying so, not plain text.
    const expired = await c.post("/admin/health/check", { _csrf: "x".repeat(43) }, html);
    assertEquals([expired.status, kind(expired)], [403, "text/html"]);
    assertMatch(await expired.text(), /This form has expired or did not come from this site/);
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM integrity_checks`;
    assertEquals(n, 0, "no check ran");
  }));

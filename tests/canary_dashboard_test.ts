/**
 * The canary in a real browser (Chromium): an admin outside the rollout gets
 * the "not enabled" page and no health data by any route; an admin inside
 * sees the dashboard and its rollout section, and rolling back from there
 * takes the dashboard away from everyone.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { chromium, type Page } from "playwright-core";
import { inRollout } from "../lib/canary/bucket.ts";
import { rolloutState, setRollout } from "../lib/canary/rollout.ts";
import { hashPassword } from "../lib/password.ts";
import { BROWSERS, CHROMIUM_ARGS, installed } from "./_browser.ts";
import { hasServer } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";
import { seedConsistent } from "./_integrity.ts";

const PASSWORD = "canary-password-1";

async function signIn(page: Page, base: string, email: string) {
  await page.goto(`${base}/admin/login`);
  await page.fill("#email", email);
  await page.fill("#password", PASSWORD);
  await page.click("form.stack button[type=submit]");
  await page.waitForLoadState("networkidle");
}

/** What the page's own session gets from `path` (status, a header, the start of the body). */
function fetchFromPage(page: Page, path: string, headers: Record<string, string> = {}) {
  return page.evaluate(async ([path, headers]) => {
    const res = await fetch(path, { headers, redirect: "manual" });
    return { status: res.status, hxRedirect: res.headers.get("hx-redirect"), body: await res.text() };
  }, [path, headers] as const);
}

Deno.test({
  name: "admins outside the rollout never see health data; an admin inside rolls it back from the dashboard",
  ignore: !hasServer || !installed(BROWSERS.chromium),
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withTestApp(async ({ db, app, deps }) => {
    await seedConsistent(db.sql, 50);
    const check = await deps.runner.run("manual");
    const hash = await hashPassword(PASSWORD);
    const admins: Record<"inside" | "outside", { id: number; email: string }> = {} as never;
    let id = 300_000;
    for (const where of ["inside", "outside"] as const) {
      while (inRollout(id, 50) !== (where === "inside")) id++;
      const email = `${where}@canary.test`;
      await db
        .sql`INSERT INTO users (id, email, hashed_password, role) VALUES (${id}, ${email}, ${hash}, 'ADMIN')`;
      admins[where] = { id: id++, email };
    }
    await setRollout(db.sql, { percent: 50, reason: "canary", source: "cli", actorId: null, actor: "test" });

    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req, info) => app.fetch(req, { remoteAddr: info.remoteAddr }),
    );
    const base = `http://127.0.0.1:${server.addr.port}`;
    const browser = await chromium.launch({ executablePath: BROWSERS.chromium, args: CHROMIUM_ARGS });
    try {
      // Outside: the page says so, and nothing of the health data is anywhere.
      const outside = await (await browser.newContext()).newPage();
      await signIn(outside, base, admins.outside.email);
      assertEquals(await outside.locator("h1").innerText(), "Not enabled for you yet");
      const text = await outside.locator("body").innerText();
      assertMatch(text, /50 % of admins have it/);
      const rate = `${(check.consistency_rate! * 100).toFixed(2)} %`;
      assert(!text.includes(rate), `the consistency rate ${rate} is on the page`);
      for (const selector of ["#live", "#violations-part", "#history-part", "#rollout", "[sse-connect]"]) {
        assertEquals(await outside.locator(selector).count(), 0, `${selector} is on the page`);
      }
      const part = await fetchFromPage(outside, "/admin/health", {
        "HX-Request": "true",
        "HX-Target": "live",
      });
      assertEquals([part.status, part.hxRedirect, part.body], [204, "/admin/health", ""]);
      for (const path of ["/admin/health/violations.csv", "/admin/students/1", "/admin/health?window=7d"]) {
        const got = await fetchFromPage(outside, path);
        assertEquals(got.status, 200, path);
        assertMatch(got.body, /Not enabled for you yet/, path);
        assert(!got.body.includes(rate) && !got.body.includes("student_id"), `${path} leaks health data`);
      }
      assertEquals((await fetchFromPage(outside, "/admin/health/events")).status, 403);

      // Inside: the dashboard, with the rollout section; rolling back takes it away.
      const inside = await (await browser.newContext()).newPage();
      await signIn(inside, base, admins.inside.email);
      assertEquals(await inside.locator("#live").count(), 1);
      const rollout = inside.locator("#rollout");
      assertMatch(await rollout.innerText(), /50 %\s+of admins see this dashboard/);
      assertEquals(await rollout.locator("tbody tr").count(), 4, "the four canary metrics");
      await rollout.locator("button.danger").click();
      await inside.waitForLoadState("networkidle");
      assertEquals(await inside.locator("h1").innerText(), "Not enabled for you yet");
      const state = await rolloutState(db.sql);
      assertEquals([state.percent, state.last_change?.source, state.last_change?.actor], [
        0,
        "dashboard",
        admins.inside.email,
      ]);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  }));

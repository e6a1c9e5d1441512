/**
 * The admin dashboard in a real browser (Debian's Chromium through
 * playwright-core), against real app processes on a real PostgreSQL: one
 * browser, pages reused. Firefox and WebKit run a smoke path in
 * tests/dashboard_engines_test.ts.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import axe from "axe-core/axe.min.js" with { type: "text" };
import { type Browser, chromium, type Page } from "playwright-core";
import { seed } from "../lib/seed.ts";
import { BROWSERS, CHROMIUM_ARGS, installed, screenshotDir, skipNotice, VIEWPORTS } from "./_browser.ts";
import { hasServer, type TestDatabase } from "./_db.ts";
import { withTestApp } from "./_fixture.ts";
import { LOAD_SECRET, loadToken } from "./_load.ts";
import { type ServerProcess, startServer } from "./_process.ts";

const PASSWORD = "admin-password-1";
/** The narrowest phone the pages are made for (checked for overflow besides the screenshot sizes). */
const SMALL_PHONE = { name: "small phone", width: 360, height: 740 } as const;
const ADMIN = "admin@staging.example.com";
const hasChromium = installed(BROWSERS.chromium);
if (!hasChromium) skipNotice("Chromium", BROWSERS.chromium, "apt-get install chromium");

/** Problems a page reported (console errors, page errors, CSP violations), with the step they came in. */
const problems: string[] = [];
let step = "";

function watch(page: Page) {
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${step}: ${page.url()}: console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${step}: ${page.url()}: ${e.message}`));
  return page;
}

async function signIn(page: Page, base: string, email = ADMIN, password = PASSWORD) {
  await page.goto(`${base}/admin/login`);
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("form.stack button[type=submit]");
}

/** The "N violations in the latest check" figure of the table. */
/** The elements whose right edge is past `width` (tag, class, text), for a failure message. */
async function overflowing(page: Page, width: number): Promise<string> {
  // A string: the test's TypeScript has no DOM types.
  return await page.evaluate(`
    [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > ${width} + 0.5)
      // Inside a scrolling box (a wide table) is not past the page's edge.
      .filter((e) => ![...document.querySelectorAll("body *")].some((box) =>
        box !== e && box.contains(e) && getComputedStyle(box).overflowX !== "visible"))
      .slice(0, 8)
      .map((e) => e.tagName.toLowerCase() + "." + e.className + " (" +
        Math.round(e.getBoundingClientRect().right) + " px: " + (e.textContent || "").trim().slice(0, 40) + ")")
      .join("; ")`);
}

async function violationTotal(page: Page): Promise<number> {
  const text = await page.locator("#violations p.muted").first().innerText();
  return Number(text.split(" ")[0].replace(/,/g, ""));
}

async function until(what: string, test: () => Promise<boolean>, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting until ${what}`);
}

/** Breaks one more pair, around the enforcer: the license of a pair that is consistent now goes missing. */
async function breakOne(db: TestDatabase, after: number) {
  await db.sql`
    DELETE FROM user_licenses WHERE id = (
      SELECT l.id FROM user_licenses l
      JOIN specialization_progress p ON p.student_id = l.user_id AND p.specialization_id = l.specialization_type
      WHERE l.user_id > ${after} AND p.current_level = l.current_level
      ORDER BY l.user_id LIMIT 1)`;
}

/** Steps whose browser errors are on purpose (a refused password, a 403 asked for). */
const erring = new Set<string>();

/** Runs `fn` as part of a step that makes the browser report errors on purpose. */
async function expectingErrors(fn: () => Promise<void>) {
  erring.add(step);
  await fn();
}

async function axeViolations(page: Page) {
  // Through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(axe);
  const result = await page.evaluate(() =>
    (globalThis as unknown as {
      axe: { run: () => Promise<{ violations: { id: string; impact: string }[] }> };
    }).axe
      .run()
  );
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) =>
    `${v.id}: ${
      (v as unknown as { nodes: { target: string[]; failureSummary: string }[] }).nodes.slice(0, 3)
        .map((n) => `${n.target.join(" ")} (${n.failureSummary.split("\n").slice(-1)[0]})`).join("; ")
    }`
  );
}

Deno.test({
  name: "the dashboard in Chromium: sign-in, the live page, filters, live updates, repair, escaping, a11y",
  ignore: !hasServer || !hasChromium,
  sanitizeOps: false,
  sanitizeResources: false,
}, (t) =>
  withTestApp(async ({ db, dataDir, logDir }) => {
    await seed(db.sql, {
      students: 400,
      desyncRate: 0.15,
      adminEmail: ADMIN,
      adminPassword: PASSWORD,
      studentPassword: "student-password-1",
    });
    const env = {
      DATABASE_URL: db.url,
      JWT_SECRET: LOAD_SECRET,
      DATA_DIR: dataDir,
      LOG_DIR: logDir,
      RATE_LIMIT_PER_MINUTE: "0",
      LOG_REQUESTS: "0",
      SCAN_ENABLED: "1",
      SCAN_CRON: "0 0 1 1 *",
    };
    // A: the page under test, live updates only (its timer would take an hour).
    // B: another instance on the same database. P: a short refresh timer.
    const servers: ServerProcess[] = [];
    const stepOf = (name: string, fn: () => Promise<void> | void) =>
      t.step(name, async () => {
        step = name;
        await fn();
      });
    let browser: Browser | undefined;
    try {
      const [a, b, p] = await Promise.all([
        startServer({ ...env, DASHBOARD_REFRESH_SECONDS: "3600" }),
        startServer({ ...env, DASHBOARD_REFRESH_SECONDS: "3600" }),
        startServer({ ...env, DASHBOARD_REFRESH_SECONDS: "1" }),
      ]);
      servers.push(a, b, p);
      const apiToken = await loadToken(401); // the seeded admin: students are 1..400
      const api = (server: ServerProcess, path: string, init: RequestInit = {}) =>
        fetch(`${server.url}${path}`, { ...init, headers: { Authorization: apiToken, ...init.headers } });
      browser = await chromium.launch({ executablePath: BROWSERS.chromium, args: CHROMIUM_ARGS });
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const page = watch(await context.newPage());
      const shots = await screenshotDir();

      await stepOf(
        "sign-in: / leads there; a wrong password is refused, the right one lands on /admin/health",
        async () => {
          await page.goto(`${a.url}/`);
          assertEquals(page.url(), `${a.url}/admin/login?next=%2Fadmin%2Fhealth`);
          await page.fill("#email", ADMIN);
          await page.fill("#password", "wrong-password");
          await expectingErrors(async () => {
            await page.click("form.stack button[type=submit]");
            assertMatch(await page.locator("[role=alert]").innerText(), /Invalid email or password/);
          });
          await page.fill("#password", PASSWORD);
          await page.click("form.stack button[type=submit]");
          await page.waitForURL(`${a.url}/admin/health`);
          assertEquals(await page.locator("h1").innerText(), "Integrity health");
        },
      );

      await stepOf("the gauge shows the API's consistency rate", async () => {
        const status = await (await api(a, "/api/v1/health/status")).json();
        const gauge = page.locator("[role=meter]");
        assertEquals(await gauge.getAttribute("aria-valuenow"), (status.consistency_rate * 100).toFixed(2));
        assertMatch(await gauge.getAttribute("aria-valuetext") ?? "", new RegExp(status.status));
      });

      await stepOf("a desync injected with SQL appears after Check now, without a reload", async () => {
        await page.evaluate(() => (globalThis as unknown as { marker: number }).marker = 42);
        const before = await violationTotal(page);
        await breakOne(db, 7);
        await page.click(".check-form button");
        await until("the table counts the new violation", async () => (await violationTotal(page)) > before);
        assertEquals(await page.evaluate(() => (globalThis as unknown as { marker: number }).marker), 42);
      });

      await stepOf(
        "a check finished by another instance reaches the open page through the live update",
        async () => {
          const before = await violationTotal(page);
          await breakOne(db, 11);
          const res = await api(b, "/api/v1/health/check-now", { method: "POST" });
          assertEquals(res.status, 200);
          await res.body?.cancel();
          // A's timer is an hour long: only LISTEN/NOTIFY and the event stream can bring this.
          await until(
            "the page on A shows B's check",
            async () => (await violationTotal(page)) > before,
            5000, // usually well under a second; the bound leaves room for a loaded test machine
          );
        },
      );

      await stepOf("with the event stream cut, the short refresh timer still picks up a change", async () => {
        // Not watched: the aborted stream is reported as a failed load, on purpose here.
        const polled = await context.newPage();
        await polled.route("**/admin/health/events", (route) => route.abort());
        await polled.goto(`${p.url}/admin/login`);
        await signIn(polled, p.url);
        await polled.waitForURL(`${p.url}/admin/health`);
        const before = await violationTotal(polled);
        await breakOne(db, 13);
        const res = await api(b, "/api/v1/health/check-now", { method: "POST" });
        await res.body?.cancel();
        await until(
          "the timer refreshed the page",
          async () => (await violationTotal(polled)) > before,
          5000,
        );
        await polled.close();
      });

      await stepOf("filter and paging keep the URL; reload and back work", async () => {
        await page.selectOption("select[name=kind]", "MISSING_LICENSE");
        await until(
          "the URL has the filter",
          () => Promise.resolve(page.url().includes("kind=MISSING_LICENSE")),
        );
        const filtered = await violationTotal(page);
        const kinds = await page.locator("#violations tbody td:first-child").allInnerTexts();
        assert(kinds.length > 0 && kinds.every((k) => k === "Missing license"), kinds.join());
        await page.click("text=Next page");
        await until("the URL has the cursor", () => Promise.resolve(page.url().includes("cursor=")));
        const secondPage = await page.locator("#violations tbody tr").first().innerText();
        await page.reload();
        assertEquals(
          await page.locator("#violations tbody tr").first().innerText(),
          secondPage,
          "reload keeps the page",
        );
        await page.goBack();
        await until("back leaves the cursor", () => Promise.resolve(!page.url().includes("cursor=")));
        assertEquals(await violationTotal(page), filtered);
        assertEquals(await page.locator("select[name=kind]").inputValue(), "MISSING_LICENSE");
        await page.goto(`${a.url}/admin/health`);
      });

      await stepOf("a live update keeps the table's filter, the chart's window and the rows", async () => {
        await page.selectOption("select[name=kind]", "MISSING_LICENSE");
        await until("the URL has the filter", () =>
          Promise.resolve(page.url().includes("kind=MISSING_LICENSE")));
        await page.locator("#history nav.segmented").getByText("7d").click();
        await until(
          "the URL has the window and still the filter",
          () =>
            Promise.resolve(page.url().endsWith("/admin/health?window=7d&kind=MISSING_LICENSE")),
        );
        const url = page.url();
        const before = await violationTotal(page);
        await breakOne(db, 17); // one more missing license
        const res = await api(b, "/api/v1/health/check-now", { method: "POST" });
        await res.body?.cancel();
        await until("the live update brought the new violation", async () =>
          (await violationTotal(page)) > before);
        await new Promise((r) =>
          setTimeout(r, 500)
        ); // every refresh the event started has landed
        assertEquals(page.url(), url);
        assertEquals(await page.locator("select[name=kind]").inputValue(), "MISSING_LICENSE");
        assertMatch(await page.locator("#violations p.muted").first().innerText(), /match the filter/);
        const kinds = await page.locator("#violations tbody td:first-child").allInnerTexts();
        assert(kinds.length > 0 && kinds.every((k) => k === "Missing license"), kinds.join());
        assertEquals(await page.locator('#history [aria-current="true"]').innerText(), "7d");
        assertEquals(await page.locator("#live input[name=window]").first().inputValue(), "7d");
        await page.goto(`${a.url}/admin/health`);
      });

      await stepOf("a <script> stored in a user's name renders as text", async () => {
        await db
          .sql`UPDATE users SET full_name = ${"<script>window.pwned = 1</script><img src=x onerror=alert(1)>"} WHERE id = 5`;
        await page.goto(`${a.url}/admin/students/5`);
        assertMatch(await page.locator("h1").innerText(), /<script>window\.pwned = 1<\/script>/);
        assertEquals(
          await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned),
          undefined,
        );
      });

      await stepOf(
        "axe-core finds no serious or critical violation; screenshots at three widths",
        async () => {
          const pages: [string, string][] = [["health", "/admin/health"], ["student", "/admin/students/7"]];
          for (const [name, path] of pages) {
            await page.goto(`${a.url}${path}`);
            assertEquals(await axeViolations(page), [], `${name} has accessibility violations`);
            for (const v of [SMALL_PHONE, ...VIEWPORTS]) {
              await page.setViewportSize({ width: v.width, height: v.height });
              // Layout may settle a frame after the resize (or after a live swap landing meanwhile).
              const width = () => page.evaluate("document.documentElement.scrollWidth");
              for (let i = 0; i < 20 && await width() !== v.width; i++) {
                await new Promise((r) => setTimeout(r, 100));
              }
              assertEquals(
                await width(),
                v.width,
                `${name} fits ${v.width} px; past the edge: ${await overflowing(page, v.width)}`,
              );
              await page.screenshot({
                path: `${shots}/chromium-${name}-${v.width}x${v.height}.png`,
                fullPage: true,
              });
            }
            await page.setViewportSize({ width: 1440, height: 900 });
          }
          const anonymous = watch(await browser!.newPage());
          await anonymous.goto(`${a.url}/admin/login`);
          assertEquals(await axeViolations(anonymous), [], "login has accessibility violations");
          for (const v of VIEWPORTS) {
            await anonymous.setViewportSize({ width: v.width, height: v.height });
            await anonymous.screenshot({ path: `${shots}/chromium-login-${v.width}x${v.height}.png` });
          }
          await anonymous.close();
        },
      );

      await stepOf(
        "repair with a preview fixes the pairs, the table empties and the gauge animates",
        async () => {
          await page.goto(`${a.url}/admin/health`);
          const gaugeTransition =
            `getComputedStyle(document.getElementById("gauge-value")).transitionDuration`;
          await page.emulateMedia({ reducedMotion: "reduce" });
          assertEquals(
            await page.evaluate(gaugeTransition),
            "0s",
            "no animation when reduced motion is asked for",
          );
          await page.emulateMedia({ reducedMotion: "no-preference" });
          assertMatch(String(await page.evaluate(gaugeTransition)), /^0\.9s/);
          // htmx settles the arc's offset (layout.tsx): the new arc starts at the old value, so CSS animates it.
          await page.evaluate(`window.gaugeRuns = [];
          document.addEventListener("transitionrun", (e) => {
            if (e.target.id === "gauge-value") window.gaugeRuns.push(e.propertyName);
          });`);
          await page.click("text=Repair all…");
          await page.locator("#repair-panel").getByText("would be re-synced").waitFor();
          await page.locator("#repair-panel button.danger").click();
          await page.locator("#repair-panel").getByText("re-synced. Audit entry").waitFor();
          await until(
            "the table is empty",
            async () => (await page.locator("#violations .empty").count()) === 1,
            5000,
          );
          await until(
            "the gauge shows the repaired state",
            async () => (await page.locator("[role=meter]").getAttribute("aria-valuenow")) === "100.00",
          );
          // Whether that update animated depends on which of the repair's answer and the live stream
          // swapped last (a later swap of the same value replaces an arc mid-transition). So the
          // animation is checked on its own, once the page is quiet: a new arc arriving with another
          // value, as any swap brings it, moves from the value shown to its own.
          await new Promise((r) => setTimeout(r, 1000));
          await page.evaluate(`window.gaugeRuns = [];
          const arc = document.getElementById("gauge-value");
          const fresh = arc.cloneNode(true);
          fresh.setAttribute("stroke-dashoffset", String(Number(arc.getAttribute("stroke-dashoffset")) + 40));
          arc.replaceWith(fresh);`);
          await until(
            "a new gauge arc was animated from the value shown to its own",
            async () => ((await page.evaluate("window.gaugeRuns")) as string[]).includes("stroke-dashoffset"),
          );
        },
      );

      await stepOf("a student who signs in gets a clear 403 page", async () => {
        const other = watch(await browser!.newPage());
        await expectingErrors(async () => {
          await signIn(other, a.url, "student1@academy.example.com", "student-password-1");
          assertMatch(await other.locator("h1").innerText(), /Admins only/);
        });
        await other.close();
      });

      await stepOf("a POST without the session's CSRF token is refused", async () => {
        await expectingErrors(async () => {
          const status = await page.evaluate(async () =>
            (await fetch("/admin/health/check", { method: "POST", body: new URLSearchParams({ x: "1" }) }))
              .status
          );
          assertEquals(status, 403);
        });
      });

      await stepOf("signing out ends the session", async () => {
        await page.click("text=Sign out");
        await page.waitForURL(/\/admin\/login/);
        await page.goto(`${a.url}/admin/health`);
        assertMatch(page.url(), /\/admin\/login\?next=/);
      });

      await stepOf("no console error, page error or CSP violation on any page", () => {
        assertEquals(problems.filter((p) => !erring.has(p.slice(0, p.indexOf(": http")))), []);
      });
    } finally {
      await browser?.close();
      await Promise.all(servers.map((s) => s.stop()));
    }
  }));

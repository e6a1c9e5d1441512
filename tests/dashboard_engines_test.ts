/**
 * The dashboard's smoke path in the two other engines of the plan's browser
 * matrix: Firefox (Debian's firefox-esr under puppeteer-core, WebDriver BiDi)
 * and WebKit, Safari's engine (Debian's WebKitWebDriver + MiniBrowser under
 * selenium-webdriver, in xvfb). Sign in, the gauge shows the API's rate,
 * "Check now" updates the page without a reload, no script or CSP error, a
 * 390 px screenshot. Chromium runs the full suite (tests/dashboard_test.ts).
 */
import { assert, assertEquals } from "./_assert.ts";
import puppeteer from "puppeteer-core";
import { Builder, By, until } from "selenium-webdriver";
import { seed } from "../lib/seed.ts";
import { BROWSERS, installed, screenshotDir, skipNotice } from "./_browser.ts";
import { hasServer, type TestDatabase } from "./_db.ts";
import { closedPort, withTestApp } from "./_fixture.ts";
import { LOAD_SECRET, loadToken } from "./_load.ts";
import { type ServerProcess, startServer } from "./_process.ts";

const PASSWORD = "admin-password-1";
const ADMIN = "admin@staging.example.com";
const STUDENTS = 200;

const hasFirefox = installed(BROWSERS.firefox);
const hasWebKit = installed(BROWSERS.webkitDriver) && installed(BROWSERS.miniBrowser) &&
  installed(BROWSERS.xvfbRun);
if (!hasFirefox) skipNotice("Firefox", BROWSERS.firefox, "apt-get install firefox-esr");
if (!hasWebKit) skipNotice("WebKit", BROWSERS.webkitDriver, "apt-get install webkit2gtk-driver xvfb");

// Collects errors inside the page (script errors, CSP violations, failed htmx
// requests) where a driver cannot read the console. Run it right after load.
const WATCH_PAGE = `
  window.__problems = [];
  window.addEventListener("error", (e) => window.__problems.push("error: " + e.message));
  document.addEventListener("securitypolicyviolation", (e) => window.__problems.push("csp: " + e.violatedDirective));
  document.body.addEventListener("htmx:responseError", (e) => window.__problems.push("htmx: " + e.detail.xhr.status));
`;

/** A seeded database and one app process; `fn` gets its URL, the API's rate and a way to break a pair. */
function withServer(
  fn: (
    ctx: { server: ServerProcess; apiRate: () => Promise<string>; breakOne: () => Promise<void> },
  ) => Promise<void>,
) {
  return withTestApp(async ({ db, dataDir, logDir }) => {
    await seed(db.sql, {
      students: STUDENTS,
      desyncRate: 0.05,
      adminEmail: ADMIN,
      adminPassword: PASSWORD,
      studentPassword: "student-password-1",
    });
    const server = await startServer({
      DATABASE_URL: db.url,
      JWT_SECRET: LOAD_SECRET,
      DATA_DIR: dataDir,
      LOG_DIR: logDir,
      RATE_LIMIT_PER_MINUTE: "0",
      LOG_REQUESTS: "0",
      SCAN_ENABLED: "1",
      SCAN_CRON: "0 0 1 1 *",
    });
    const token = await loadToken(STUDENTS + 1);
    const apiRate = async () => {
      const status =
        await (await fetch(`${server.url}/api/v1/health/status`, { headers: { Authorization: token } }))
          .json();
      return (status.consistency_rate * 100).toFixed(2);
    };
    try {
      await fn({ server, apiRate, breakOne: () => breakOne(db) });
    } finally {
      await server.stop();
    }
  });
}

async function breakOne(db: TestDatabase) {
  await db.sql`
    DELETE FROM user_licenses WHERE id = (
      SELECT l.id FROM user_licenses l
      JOIN specialization_progress p ON p.student_id = l.user_id AND p.specialization_id = l.specialization_type
      WHERE p.current_level = l.current_level ORDER BY l.id LIMIT 1)`;
}

async function until_(what: string, test: () => Promise<boolean>, ms = 8000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting until ${what}`);
}

Deno.test({
  name: "Firefox: sign in, the gauge shows the API's rate, Check now updates the page, no errors",
  ignore: !hasServer || !hasFirefox,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withServer(async ({ server, apiRate, breakOne }) => {
    const browser = await puppeteer.launch({
      browser: "firefox",
      executablePath: BROWSERS.firefox,
      headless: true,
    });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 390, height: 844 });
      const errors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`${server.url}/admin/login`);
      await page.type("#email", ADMIN);
      await page.type("#password", PASSWORD);
      await Promise.all([page.waitForNavigation(), page.click("form.stack button[type=submit]")]);
      assertEquals(new URL(page.url()).pathname, "/admin/health");
      const rate = () =>
        page.evaluate(`document.querySelector("[role=meter]").getAttribute("aria-valuenow")`);
      assertEquals(await rate(), await apiRate());
      await page.evaluate(WATCH_PAGE);
      await page.evaluate("window.marker = 42");
      const before = await rate();
      await breakOne();
      await page.click(".check-form button");
      await until_("the gauge moves", async () => (await rate()) !== before);
      assertEquals(await rate(), await apiRate());
      assertEquals(await page.evaluate("window.marker"), 42, "no reload");
      assertEquals(await page.evaluate("window.__problems"), []);
      assertEquals(errors, []);
      await page.screenshot({ path: `${await screenshotDir()}/firefox-health-390x844.png`, fullPage: true });
    } finally {
      await browser.close();
    }
  }));

Deno.test({
  name: "WebKit: sign in, the gauge shows the API's rate, Check now updates the page, no errors",
  ignore: !hasServer || !hasWebKit,
  sanitizeOps: false,
  sanitizeResources: false,
}, () =>
  withServer(async ({ server, apiRate, breakOne }) => {
    const port = closedPort();
    // The driver starts MiniBrowser, which needs a display: xvfb-run gives it one.
    const driverProcess = new Deno.Command(BROWSERS.xvfbRun, {
      args: ["-a", BROWSERS.webkitDriver, `--port=${port}`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await until_("WebKitWebDriver listens", async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/status`);
          await res.body?.cancel();
          return res.ok;
        } catch {
          return false;
        }
      });
      const driver = await new Builder().usingServer(`http://127.0.0.1:${port}`).withCapabilities({
        browserName: "MiniBrowser",
        "webkitgtk:browserOptions": { binary: BROWSERS.miniBrowser, args: ["--automation"] },
      }).build();
      try {
        await driver.manage().window().setRect({ width: 390, height: 844 });
        await driver.get(`${server.url}/admin/login`);
        await driver.findElement(By.id("email")).sendKeys(ADMIN);
        await driver.findElement(By.id("password")).sendKeys(PASSWORD);
        await driver.findElement(By.css("form.stack button[type=submit]")).click();
        await driver.wait(until.urlContains("/admin/health"), 10_000);
        // Read in the page in one step: the gauge may be swapped between a find and a read.
        const rate = async () =>
          await driver.executeScript<string>(
            'return document.querySelector("[role=meter]").getAttribute("aria-valuenow")',
          );
        assertEquals(await rate(), await apiRate());
        await driver.executeScript(WATCH_PAGE + "window.marker = 42;");
        const before = await rate();
        await breakOne();
        await driver.findElement(By.css(".check-form button")).click();
        await until_("the gauge moves", async () => (await rate()) !== before);
        assertEquals(await rate(), await apiRate());
        assertEquals(await driver.executeScript("return window.marker"), 42, "no reload");
        assertEquals(await driver.executeScript("return window.__problems"), []);
        const png = await driver.takeScreenshot();
        assert(png.length > 1000, "a screenshot");
        await Deno.writeFile(
          `${await screenshotDir()}/webkit-health-390x844.png`,
          Uint8Array.from(atob(png), (c) => c.charCodeAt(0)),
        );
      } finally {
        await driver.quit();
      }
    } finally {
      driverProcess.kill("SIGTERM");
      await driverProcess.status;
    }
  }));

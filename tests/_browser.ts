/** Real browsers for the dashboard tests: Debian's Chromium, Firefox ESR and WebKit (never downloaded). */
import { join } from "node:path";

/** Where the browsers are on Debian (apt: chromium, firefox-esr, webkit2gtk-driver + xvfb). */
export const BROWSERS = {
  chromium: "/usr/bin/chromium",
  firefox: "/usr/bin/firefox-esr",
  webkitDriver: "/usr/bin/WebKitWebDriver",
  miniBrowser: "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
  xvfbRun: "/usr/bin/xvfb-run",
} as const;

/** True when the file exists (a browser is installed). */
export function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Says once, loudly, why an engine's tests are skipped (never silently). */
export function skipNotice(engine: string, missing: string, install: string): void {
  console.log(`dashboard tests: ${engine} skipped: ${missing} is not installed (${install})`);
}

/**
 * Where screenshots go: TEST_OUTPUT_DIR/screenshots, by default under the system's temp directory
 * (tests never write into the source tree).
 */
export async function screenshotDir(): Promise<string> {
  const base = Deno.env.get("TEST_OUTPUT_DIR") ??
    join(Deno.env.get("TMPDIR") ?? "/tmp", "levelguard-test-output");
  const dir = join(base, "screenshots");
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/** Chromium's flags on these machines (as root, no GPU, no calls home). */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

/** Viewports of the plan's matrix: phone, tablet, desktop. */
export const VIEWPORTS = [
  { name: "phone", width: 390, height: 844 },
  { name: "tablet", width: 768, height: 1024 },
  { name: "desktop", width: 1440, height: 900 },
] as const;

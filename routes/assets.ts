/**
 * /static/*: the dashboard's CSS, script, icon and the vendored htmx, served
 * from static/ with long-lived caching. Vendored files live under versioned
 * folders; our own carry `?v=<content hash>` in the pages, so a change is a new URL.
 */
import { Hono } from "hono";
import { serveStatic } from "hono/deno";
import { fileURLToPath } from "node:url";
import type { Assets } from "../views/layout.tsx";

const ROOT = fileURLToPath(new URL("../static/", import.meta.url));
const IMMUTABLE = "public, max-age=31536000, immutable";
const HTMX = "vendor/htmx-2.0.11/htmx.min.js";
const SSE = "vendor/htmx-ext-sse-2.2.4/sse.min.js";

async function versioned(path: string): Promise<string> {
  const bytes = await Deno.readFile(ROOT + path);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
  return `/static/${path}?v=${hex}`;
}

/** The asset URLs the pages use (read once at start-up). */
export async function assetUrls(): Promise<Assets> {
  return {
    css: await versioned("css/dashboard.css"),
    js: await versioned("js/dashboard.js"),
    icon: await versioned("icon.svg"),
    htmx: `/static/${HTMX}`,
    sse: `/static/${SSE}`,
  };
}

/** Serves static/css, static/js, static/vendor and the icon (nothing else under static/). */
export function assetRoutes() {
  const app = new Hono();
  const files = serveStatic({
    root: ROOT,
    rewriteRequestPath: (path) => path.replace(/^\/static\//, ""),
    onFound: (_path, c) => {
      c.header("Cache-Control", IMMUTABLE);
      c.header("X-Content-Type-Options", "nosniff");
    },
  });
  for (const path of ["/static/css/*", "/static/js/*", "/static/vendor/*", "/static/icon.svg"]) {
    app.get(path, files);
  }
  return app;
}

/** The one layout of every page: head (styles, htmx, its config), header, main. */
import type { Child } from "hono/jsx";
import { raw } from "hono/html";

/** URLs of the static assets, versioned so they can be cached for a year. */
export interface Assets {
  css: string;
  js: string;
  htmx: string;
  sse: string;
  icon: string;
}

/** Who is signed in, for the header. */
export interface Viewer {
  email: string;
  csrfToken: string;
}

// htmx without eval (so the CSP needs no 'unsafe-eval'), without its inline
// indicator styles (the CSP refuses inline style), and with a full reload when
// the back button reaches a page it did not keep (the server renders it).
// Settling also carries the gauge's SVG attributes (htmx 2 settles only class,
// style, width and height): the new arc starts at the old offset, so its CSS
// transition runs.
export const HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
  refreshOnHistoryMiss: true,
  attributesToSettle: ["class", "style", "width", "height", "stroke-dashoffset", "stroke-opacity"],
});

/** The page around `children`. */
export function Layout(props: { title: string; assets: Assets; viewer?: Viewer | null; children?: Child }) {
  const { title, assets, viewer } = props;
  return (
    <>
      {raw("<!DOCTYPE html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <meta name="color-scheme" content="light dark" />
          <meta name="htmx-config" content={HTMX_CONFIG} />
          <title>{title} · Levelguard</title>
          <link rel="icon" href={assets.icon} type="image/svg+xml" />
          <link rel="stylesheet" href={assets.css} />
          <script src={assets.htmx} defer></script>
          <script src={assets.sse} defer></script>
          <script src={assets.js} defer></script>
        </head>
        <body hx-headers={viewer ? JSON.stringify({ "X-CSRF-Token": viewer.csrfToken }) : undefined}>
          <a class="skip" href="#main">Skip to content</a>
          <header class="topbar">
            <a class="brand" href="/admin/health">Levelguard</a>
            {viewer && (
              <nav class="topbar-nav" aria-label="Account">
                <span class="who">{viewer.email}</span>
                <form method="post" action="/admin/logout">
                  <input type="hidden" name="_csrf" value={viewer.csrfToken} />
                  <button type="submit" class="link">Sign out</button>
                </form>
              </nav>
            )}
          </header>
          <main id="main">{props.children}</main>
        </body>
      </html>
    </>
  );
}

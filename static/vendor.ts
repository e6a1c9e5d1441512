/**
 * `deno task vendor`: copies htmx and its SSE extension from their npm
 * packages (versions pinned in deno.json) into static/vendor/<name>-<version>/,
 * the versioned paths the pages load and the server caches as immutable. The
 * copies are committed: no CDN, no build step at run time.
 */
import { z } from "zod";
import htmx from "htmx.org/dist/htmx.min.js" with { type: "text" };
import htmxPackage from "htmx.org/package.json" with { type: "json" };
import sse from "htmx-ext-sse/dist/sse.min.js" with { type: "text" };
import ssePackage from "htmx-ext-sse/package.json" with { type: "json" };
import { argsOrExit } from "../lib/args.ts";

argsOrExit({
  name: "vendor",
  summary: "Copies htmx and htmx-ext-sse from their npm packages into static/vendor/ (versioned folders).",
  options: {},
  schema: z.object({ _: z.array(z.string()) }),
});

const files: [string, string][] = [
  [`htmx-${htmxPackage.version}/htmx.min.js`, htmx],
  [`htmx-ext-sse-${ssePackage.version}/sse.min.js`, sse],
];
for (const [path, text] of files) {
  const url = new URL(`vendor/${path}`, import.meta.url);
  await Deno.mkdir(new URL(".", url), { recursive: true });
  await Deno.writeTextFile(url, text);
  console.log(`vendor: static/vendor/${path} (${text.length} bytes)`);
}

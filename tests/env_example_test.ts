/** ops/env.example and docs/configuration.md stay in step with the configuration schema. */
import { assert, assertEquals } from "./_assert.ts";
import { CONFIG_DOCS, loadConfig } from "../lib/config.ts";
import { configPage } from "../docs/config_page.ts";
import { envExample } from "../docs/env_example.ts";

Deno.test("ops/env.example is current (deno task docs:env)", async () => {
  const file = await Deno.readTextFile(new URL("../ops/env.example", import.meta.url));
  assert(file === envExample(), "ops/env.example is stale: deno task docs:env");
});

Deno.test("every variable of env.example, with its example value, is accepted by the configuration", () => {
  const env: Record<string, string> = {};
  for (const [, name, value] of envExample().matchAll(/^#([A-Z_]+)=(.*)$/gm)) env[name] = value;
  assertEquals(Object.keys(env).sort(), Object.keys(CONFIG_DOCS).sort());
  loadConfig(env);
});

Deno.test("docs/configuration.md is current (deno task docs:env)", async () => {
  const file = await Deno.readTextFile(new URL("../docs/configuration.md", import.meta.url));
  assert(file === configPage(), "docs/configuration.md is stale: deno task docs:env");
});

Deno.test("docs/configuration.md has one row per variable, in the schema's order, with its default", () => {
  const rows = [...configPage().matchAll(/^\| `([A-Z_]+)` +\| (.+?) +\| /gm)];
  assertEquals(rows.map((m) => m[1]), Object.keys(CONFIG_DOCS));
  const defaults = Object.fromEntries(rows.map((m) => [m[1], m[2]]));
  assertEquals(defaults.PORT, "`8000`");
  assertEquals(defaults.SCAN_CRON, "`*/5 * * * *`");
  assertEquals(defaults.TRUST_PROXY, "unset");
  assertEquals(defaults.DATABASE_URL, "unset");
  assertEquals(defaults.RATE_LIMIT_EXEMPT, "unset");
});

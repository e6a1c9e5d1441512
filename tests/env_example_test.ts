/** ops/env.example and the README's configuration table stay in step with the configuration schema. */
import { assert, assertEquals } from "./_assert.ts";
import { CONFIG_DOCS, loadConfig } from "../lib/config.ts";
import { envExample } from "../lib/dev/env_example.ts";

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

Deno.test("the README's configuration table lists every variable", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Operating it"));
  const listed = [...table.matchAll(/^\| `([A-Z_]+)`/gm)].map((m) => m[1]);
  assertEquals(Object.keys(CONFIG_DOCS).filter((name) => !listed.includes(name)), []);
});

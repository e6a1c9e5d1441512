/**
 * `deno task docs:env`: writes ops/env.example and docs/configuration.md from
 * the configuration schema (lib/config.ts). A test fails when either is out of
 * date.
 */
import { z } from "zod";
import { argsOrExit } from "../lib/args.ts";
import { configPage } from "./config_page.ts";
import { envExample } from "./env_example.ts";

argsOrExit({
  name: "docs:env",
  summary: "Regenerates ops/env.example and docs/configuration.md from lib/config.ts (every variable, its " +
    "default and meaning).",
  options: {},
  schema: z.object({ _: z.array(z.string()) }),
});

await Deno.writeTextFile(new URL("../ops/env.example", import.meta.url), envExample());
await Deno.writeTextFile(new URL("configuration.md", import.meta.url), configPage());
console.log("docs:env: wrote ops/env.example and docs/configuration.md");

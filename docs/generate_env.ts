/**
 * `deno task docs:env`: writes ops/env.example from the configuration schema
 * (lib/config.ts). A test fails when the file is out of date.
 */
import { z } from "zod";
import { argsOrExit } from "../lib/args.ts";
import { envExample } from "../lib/dev/env_example.ts";

argsOrExit({
  name: "docs:env",
  summary: "Regenerates ops/env.example from lib/config.ts (every variable, its default and meaning).",
  options: {},
  schema: z.object({ _: z.array(z.string()) }),
});

await Deno.writeTextFile(new URL("../ops/env.example", import.meta.url), envExample());
console.log("docs:env: wrote ops/env.example");

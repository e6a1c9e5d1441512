/**
 * `deno task docs:api`: writes the API's OpenAPI document (docs/openapi.json)
 * and the TypeScript types generated from it with openapi-typescript
 * (docs/api_types.ts), for clients (`openapi-fetch`). A test fails when either
 * is out of date with the contract (routes/contract.ts).
 */
import { z } from "zod";
import { argsOrExit } from "../lib/args.ts";
import { apiDocs } from "./api_docs.ts";

argsOrExit({
  name: "docs:api",
  summary: "Regenerates docs/openapi.json and docs/api_types.ts from routes/contract.ts.",
  options: {},
  schema: z.object({ _: z.array(z.string()) }),
});

const { json, types } = await apiDocs();
const here = (name: string) => new URL(name, import.meta.url);
await Deno.writeTextFile(here("openapi.json"), json);
await Deno.writeTextFile(here("api_types.ts"), types);
console.log("docs:api: wrote docs/openapi.json and docs/api_types.ts");

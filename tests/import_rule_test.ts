/**
 * `lib/` is the service: every file in it is reached from `main.ts` or a task's entry point
 * (`tasks/*.ts`), and nothing it reaches lives under `tests/`, `loadtest/` or `docs/`. What only
 * tests, benchmarks or tooling use lives beside them (docs/architecture.md, "The import rule").
 */
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals } from "./_assert.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The repository's files (relative paths) in the module graph of `entry`, by `deno info`. */
async function graph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  assert(out.success, `deno info ${entry} failed`);
  const { modules } = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return modules.map((m) => m.specifier).filter((s) => s.startsWith("file:")).map((s) =>
    relative(ROOT, fileURLToPath(s))
  );
}

function filesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(join(ROOT, dir))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...filesUnder(path));
    else if (/\.tsx?$/.test(entry.name)) found.push(path);
  }
  return found;
}

Deno.test("every file under lib/ is reached from main.ts or a task, and lib/ reaches no test, benchmark or docs code", async () => {
  const entries = ["main.ts", ...filesUnder("tasks").filter((f) => !f.split("/").pop()!.startsWith("_"))];
  assert(entries.length > 5, entries.join(", "));
  const reached = new Set((await Promise.all(entries.map(graph))).flat());
  assertEquals(filesUnder("lib").filter((f) => !reached.has(f)), [], "lib/ files only tests or tooling use");
  // lib/'s own imports stay in lib/ (relative specifiers; bare ones are packages).
  const outside: string[] = [];
  for (const file of filesUnder("lib")) {
    const text = Deno.readTextFileSync(join(ROOT, file));
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const target = relative(ROOT, join(ROOT, file, "..", spec));
      if (!target.startsWith("lib/")) outside.push(`${file} → ${target}`);
    }
  }
  assertEquals(outside, [], "lib/ imports from outside lib/");
});

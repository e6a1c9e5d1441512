/**
 * Command-line arguments of every task, the usual way: `--help` prints the
 * usage and exits 0 before anything is touched; an unknown option or a bad
 * value prints one line plus the usage and exits 2; nothing runs on a default
 * the usage does not show.
 */
import { parseArgs } from "node:util";
import { z } from "zod";

/** One option of a task. */
export interface OptionSpec {
  type: "string" | "boolean";
  /** Shown in the usage, e.g. `N` for `--students N`. */
  value?: string;
  help: string;
}

/** What a task accepts. */
export interface TaskSpec<S extends z.ZodType> {
  /** The task's name as `deno task` knows it. */
  name: string;
  /** One line: what it does. */
  summary: string;
  options: Record<string, OptionSpec>;
  /** Positional arguments, e.g. `["status|set N|advance"]`; none when absent. */
  positionals?: string;
  /** Validates and converts the parsed values (and `_`, the positionals); its messages name the option. */
  schema: S;
  /** More lines after the options (environment variables, examples). */
  notes?: string[];
}

/** The usage text of a task. */
export function usage(spec: TaskSpec<z.ZodType>): string {
  const opts = Object.entries(spec.options);
  const width = Math.max(10, ...opts.map(([n, o]) => n.length + (o.value ? o.value.length + 1 : 0) + 2));
  const lines = [
    `usage: deno task ${spec.name}${spec.positionals ? ` ${spec.positionals}` : ""}${
      opts.length ? " [options]" : ""
    }`,
    "",
    spec.summary,
  ];
  if (opts.length) {
    lines.push("", "options:");
    for (const [name, o] of opts) {
      lines.push(`  ${`--${name}${o.value ? ` ${o.value}` : ""}`.padEnd(width + 2)}${o.help}`);
    }
  }
  lines.push(`  ${"--help".padEnd(width + 2)}this text`);
  if (spec.notes?.length) lines.push("", ...spec.notes);
  return lines.join("\n");
}

/** The outcome of parsing: the values, or what to print and the exit code. */
export type Parsed<T> = { ok: true; values: T } | { ok: false; code: 0 | 2; out: string };

/** Parses `args` against the spec; never throws. */
export function parseTaskArgs<S extends z.ZodType>(spec: TaskSpec<S>, args: string[]): Parsed<z.output<S>> {
  const options = Object.fromEntries(
    Object.entries(spec.options).map(([name, o]) => [name, { type: o.type }]),
  );
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: spec.positionals !== undefined,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
    return {
      ok: false,
      code: 2,
      out: `${spec.name}: ${message.replace(/\. To specify.*$/, "")}\n${usage(spec)}`,
    };
  }
  if (parsed.values.help) return { ok: false, code: 0, out: usage(spec) };
  const { help: _, ...values } = parsed.values;
  const result = spec.schema.safeParse({ ...values, _: parsed.positionals });
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue.path.join(".");
    const what = path === "_" || path.startsWith("_.") ? "" : `--${path}: `;
    return { ok: false, code: 2, out: `${spec.name}: ${what}${issue.message}\n${usage(spec)}` };
  }
  return { ok: true, values: result.data };
}

/** Parses `Deno.args` for a script that opens no database (benchmarks): prints and exits when it must. */
export function argsOrExit<S extends z.ZodType>(spec: TaskSpec<S>, args = Deno.args): z.output<S> {
  const parsed = parseTaskArgs(spec, args);
  if (parsed.ok) return parsed.values;
  if (parsed.code === 0) console.log(parsed.out);
  else console.error(parsed.out);
  Deno.exit(parsed.code);
}

/** `--sizes 10000,100000`: a comma-separated list of positive whole numbers. */
export function numberList(what: string) {
  return z.string().transform((text, ctx) => {
    const items = text.split(",").map((s) => Number(s.trim()));
    if (items.length === 0 || items.some((n) => !Number.isSafeInteger(n) || n <= 0)) {
      ctx.addIssue({ code: "custom", message: `must be ${what}, e.g. 10000,100000` });
      return z.NEVER;
    }
    return items;
  });
}

/** A positive whole number given as text. */
export function positiveInt() {
  return z.string().transform(Number).pipe(z.int("must be a whole number").positive());
}

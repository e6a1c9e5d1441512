/**
 * Reads a Grafana Alloy configuration file (ops/logging/config.alloy) and replays the stages of a
 * `loki.process` block on a log line, for tests: Alloy itself cannot run on our machines.
 *
 * The reader covers the part of Alloy's syntax a configuration file uses: blocks with an optional
 * label, attributes, strings (Go's escapes, which Alloy shares; backtick raw strings), numbers,
 * booleans, null, lists, objects and references (`loki.process.x.receiver`), with the commas
 * Alloy requires before a line break inside a list or an object. Expressions with operators or
 * function calls are refused rather than guessed at. The replay knows the stages the file uses
 * (json with plain field names, timestamp in RFC 3339, regex, template with `if` and field
 * actions, labels) and refuses any other, so a new stage cannot pass untested.
 */

/** A value of an attribute. A reference is kept as its dotted path. */
export type AlloyValue =
  | string
  | number
  | boolean
  | null
  | AlloyValue[]
  | { [key: string]: AlloyValue }
  | AlloyRef;

/** A reference to another component's export, e.g. `loki.write.local.receiver`. */
export class AlloyRef {
  /** The dotted path. */
  constructor(readonly path: string) {}
}

/** A block: `name "label" { attributes and blocks }`. */
export interface AlloyBlock {
  name: string;
  label: string | null;
  attributes: Record<string, AlloyValue>;
  blocks: AlloyBlock[];
}

type Token =
  | { kind: "ident"; text: string; line: number; nlBefore: boolean }
  | { kind: "string"; value: string; line: number; nlBefore: boolean }
  | { kind: "number"; value: number; line: number; nlBefore: boolean }
  | { kind: "punct"; text: string; line: number; nlBefore: boolean }
  | { kind: "eof"; line: number; nlBefore: boolean };

const SIMPLE_ESCAPES: Record<string, string> = {
  a: "\x07",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  "\\": "\\",
  '"': '"',
  "'": "'",
};

/** Splits Alloy source into tokens; comments and blank space go, line breaks are noted. */
function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let nl = true;
  const fail = (msg: string): never => {
    throw new SyntaxError(`line ${line}: ${msg}`);
  };
  while (i < src.length) {
    const ch = src[i];
    if (ch === "\n") {
      line++;
      nl = true;
      i++;
    } else if (ch === " " || ch === "\t" || ch === "\r") {
      i++;
    } else if (src.startsWith("//", i)) {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (src.startsWith("/*", i)) {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) fail("block comment not terminated");
      line += src.slice(i, end).split("\n").length - 1;
      nl ||= src.slice(i, end).includes("\n");
      i = end + 2;
    } else if (/[A-Za-z_]/.test(ch)) {
      const text = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))![0];
      tokens.push({ kind: "ident", text, line, nlBefore: nl });
      i += text.length;
      nl = false;
    } else if (/[0-9]/.test(ch)) {
      const text = /^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(src.slice(i))![0];
      tokens.push({ kind: "number", value: Number(text), line, nlBefore: nl });
      i += text.length;
      nl = false;
    } else if (ch === '"') {
      let value = "";
      i++;
      for (;;) {
        const c = src[i];
        if (c === undefined || c === "\n") fail("string literal not terminated");
        i++;
        if (c === '"') break;
        if (c !== "\\") {
          value += c;
          continue;
        }
        const e = src[i];
        if (e in SIMPLE_ESCAPES) {
          value += SIMPLE_ESCAPES[e];
          i++;
        } else if (/[0-7]/.test(e)) {
          const digits = src.slice(i, i + 3);
          if (!/^[0-7]{3}$/.test(digits)) fail("bad octal escape");
          value += String.fromCharCode(parseInt(digits, 8));
          i += 3;
        } else if (e === "x" || e === "u" || e === "U") {
          const n = { x: 2, u: 4, U: 8 }[e];
          const digits = src.slice(i + 1, i + 1 + n);
          if (!new RegExp(`^[0-9A-Fa-f]{${n}}$`).test(digits)) fail(`bad \\${e} escape`);
          value += String.fromCodePoint(parseInt(digits, 16));
          i += 1 + n;
        } else {
          fail(`unknown escape sequence \\${e ?? ""}`);
        }
      }
      tokens.push({ kind: "string", value, line, nlBefore: nl });
      nl = false;
    } else if (ch === "`") {
      const end = src.indexOf("`", i + 1);
      if (end < 0) fail("raw string not terminated");
      const value = src.slice(i + 1, end);
      tokens.push({ kind: "string", value, line, nlBefore: nl });
      line += value.split("\n").length - 1;
      i = end + 1;
      nl = false;
    } else if ("{}[](),=.".includes(ch)) {
      tokens.push({ kind: "punct", text: ch, line, nlBefore: nl });
      i++;
      nl = false;
    } else {
      fail(`unexpected character ${JSON.stringify(ch)}`);
    }
  }
  tokens.push({ kind: "eof", line, nlBefore: true });
  return tokens;
}

/** Parses an Alloy file: its top-level blocks (a configuration file has no top-level attributes). */
export function parseAlloy(src: string): AlloyBlock[] {
  const tokens = tokenize(src);
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => tokens[pos++];
  const fail = (msg: string, t: Token = peek()): never => {
    throw new SyntaxError(`line ${t.line}: ${msg}`);
  };
  const isPunct = (t: Token, text: string) => t.kind === "punct" && t.text === text;
  const expectPunct = (text: string) => {
    const t = next();
    if (!isPunct(t, text)) fail(`expected "${text}"`, t);
  };
  const dotted = (): string => {
    const first = next();
    if (first.kind !== "ident") return fail("expected a name", first);
    let name = first.text;
    while (isPunct(peek(), ".")) {
      next();
      const part = next();
      if (part.kind !== "ident") fail("expected a name after '.'", part);
      name += `.${(part as { text: string }).text}`;
    }
    return name;
  };

  /** A list or an object's items, up to `close`, with Alloy's commas. */
  const items = (close: string, item: () => void) => {
    let first = true;
    for (;;) {
      const t = peek();
      if (isPunct(t, close)) {
        next();
        return;
      }
      if (!first) fail(`expected "," or "${close}"`);
      item();
      first = false;
      if (isPunct(peek(), ",")) {
        next();
        first = true;
      } else if (peek().nlBefore) {
        fail(`missing "," before a line break`);
      }
    }
  };

  const value = (): AlloyValue => {
    const t = peek();
    if (t.kind === "string" || t.kind === "number") {
      next();
      return t.value;
    }
    if (isPunct(t, "[")) {
      next();
      const list: AlloyValue[] = [];
      items("]", () => list.push(value()));
      return list;
    }
    if (isPunct(t, "{")) {
      next();
      const object: Record<string, AlloyValue> = {};
      items("}", () => {
        const key = next();
        if (key.kind !== "ident" && key.kind !== "string") fail("expected a key", key);
        const name = key.kind === "ident" ? key.text : (key as { value: string }).value;
        if (name in object) fail(`duplicate key ${name}`, key);
        expectPunct("=");
        object[name] = value();
      });
      return object;
    }
    if (t.kind === "ident") {
      if (t.text === "true" || t.text === "false") {
        next();
        return t.text === "true";
      }
      if (t.text === "null") {
        next();
        return null;
      }
      const path = dotted();
      if (isPunct(peek(), "(")) fail(`function calls (${path}) are not read by this reader`);
      return new AlloyRef(path);
    }
    return fail("expected a value");
  };

  const body = (close: string | null): Omit<AlloyBlock, "name" | "label"> => {
    const out: Omit<AlloyBlock, "name" | "label"> = { attributes: {}, blocks: [] };
    let first = true;
    for (;;) {
      const t = peek();
      if (close === null ? t.kind === "eof" : isPunct(t, close)) {
        if (close !== null) next();
        return out;
      }
      if (!first && !t.nlBefore) fail("a statement must start on a new line");
      first = false;
      const nameToken = t;
      const name = dotted();
      if (isPunct(peek(), "=")) {
        if (name.includes(".")) fail(`an attribute name has no dots: ${name}`, nameToken);
        if (close === null) fail("a configuration file has no top-level attributes", nameToken);
        if (name in out.attributes) fail(`duplicate attribute ${name}`, nameToken);
        next();
        out.attributes[name] = value();
        if (!peek().nlBefore && !(close && isPunct(peek(), close))) fail("expected a line break");
        continue;
      }
      let label: string | null = null;
      if (peek().kind === "string") label = (next() as { value: string }).value;
      expectPunct("{");
      out.blocks.push({ name, label, ...body("}") });
    }
  };

  return body(null).blocks;
}

/** The block `name "label"` among `blocks`, or undefined. */
export function findBlock(
  blocks: AlloyBlock[],
  name: string,
  label: string | null = null,
): AlloyBlock | undefined {
  return blocks.find((b) => b.name === name && b.label === label);
}

/** Every reference in a value, depth first. */
function valueReferences(v: AlloyValue): string[] {
  if (v instanceof AlloyRef) return [v.path];
  if (Array.isArray(v)) return v.flatMap(valueReferences);
  if (v !== null && typeof v === "object") return Object.values(v).flatMap(valueReferences);
  return [];
}

/** Every reference in a block's attributes and nested blocks, depth first. */
export function references(block: AlloyBlock): string[] {
  return [...Object.values(block.attributes).flatMap(valueReferences), ...block.blocks.flatMap(references)];
}

// ---------------------------------------------------------------- replaying loki.process

/** What the stages made of a line: its labels, its timestamp and the extracted values. */
export interface Processed {
  labels: Record<string, string>;
  timestamp: Date;
  extracted: Record<string, unknown>;
}

/** A value of the extracted map as Alloy's stages turn it into a string (getString). */
function asString(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return String(v);
  return String(v);
}

function str(block: AlloyBlock, key: string, optional = false): string {
  const v = block.attributes[key];
  if (v === undefined && optional) return "";
  if (typeof v !== "string") throw new Error(`${block.name}: ${key} must be a string`);
  return v;
}

function stringMap(block: AlloyBlock, key: string): Record<string, string> {
  const v = block.attributes[key];
  if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof AlloyRef) {
    throw new Error(`${block.name}: ${key} must be an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") throw new Error(`${block.name}: ${key}.${k} must be a string`);
    out[k] = x;
  }
  return out;
}

/** Go's text/template, as far as `{{ if .x }}…{{ end }}` and `{{ .x }}` go. */
function renderTemplate(template: string, data: Record<string, string>): string {
  const parts = template.split(/\{\{-?\s*(.*?)\s*-?\}\}/s);
  let out = "";
  const skipping: boolean[] = [];
  for (let i = 0; i < parts.length; i++) {
    const active = !skipping.includes(true);
    if (i % 2 === 0) {
      if (active) out += parts[i];
      continue;
    }
    const action = parts[i];
    let m: RegExpExecArray | null;
    if ((m = /^if \.([A-Za-z_][A-Za-z0-9_]*)$/.exec(action))) skipping.push(!data[m[1]]);
    else if (action === "end") {
      if (!skipping.length) throw new Error("template: {{ end }} without {{ if }}");
      skipping.pop();
    } else if ((m = /^\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(action))) {
      if (active) out += data[m[1]] ?? "";
    } else throw new Error(`template: action {{ ${action} }} is not replayed here`);
  }
  if (skipping.length) throw new Error("template: {{ if }} without {{ end }}");
  return out;
}

/**
 * Runs the stages of a `loki.process` block on one log line, as Alloy would (for the stages named
 * in this module's header), starting from `labels` and `readAt` (the time the line was read).
 */
export function processLine(
  process: AlloyBlock,
  line: string,
  labels: Record<string, string> = {},
  readAt: Date = new Date(0),
): Processed {
  const out: Processed = { labels: { ...labels }, timestamp: readAt, extracted: {} };
  const ex = out.extracted;
  for (const stage of process.blocks) {
    switch (stage.name) {
      case "stage.json": {
        let data: unknown;
        try {
          data = JSON.parse(line);
        } catch {
          break; // Alloy logs "malformed json" and passes the line on unchanged.
        }
        if (data === null || typeof data !== "object" || Array.isArray(data)) break;
        for (const [name, expression] of Object.entries(stringMap(stage, "expressions"))) {
          const path = expression || name;
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(path)) {
            throw new Error(`stage.json: the JMESPath ${path} is not replayed here`);
          }
          const v = (data as Record<string, unknown>)[path];
          ex[name] = v === undefined ? null : typeof v === "object" && v !== null ? JSON.stringify(v) : v;
        }
        break;
      }
      case "stage.timestamp": {
        const format = str(stage, "format");
        if (format !== "RFC3339" && format !== "RFC3339Nano") {
          throw new Error(`stage.timestamp: format ${format} is not replayed here`);
        }
        const action = str(stage, "action_on_failure", true) || "fudge";
        if (!["skip", "fudge"].includes(action)) {
          throw new Error(`stage.timestamp: action_on_failure ${action}`);
        }
        const source = str(stage, "source");
        const v = asString(ex[source]);
        if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(v)) {
          out.timestamp = new Date(v);
        }
        break;
      }
      case "stage.regex": {
        const source = str(stage, "source", true);
        if (source && !(source in ex)) break;
        const input = source ? asString(ex[source]) : line;
        // RE2's (?P<name>…) is JavaScript's (?<name>…).
        const re = new RegExp(str(stage, "expression").replaceAll("(?P<", "(?<"));
        const groups = re.exec(input)?.groups ?? {};
        for (const [k, v] of Object.entries(groups)) if (v !== undefined) ex[k] = v;
        break;
      }
      case "stage.template": {
        const source = str(stage, "source");
        const data = Object.fromEntries(Object.entries(ex).map(([k, v]) => [k, asString(v)]));
        const result = renderTemplate(str(stage, "template"), data);
        if (result === "") delete ex[source];
        else ex[source] = result;
        break;
      }
      case "stage.labels": {
        for (const [label, from] of Object.entries(stringMap(stage, "values"))) {
          const key = from || label;
          if (key in ex) out.labels[label] = asString(ex[key]);
        }
        break;
      }
      default:
        throw new Error(`${stage.name} is not replayed here`);
    }
  }
  // As in Loki, a label without a value is no label.
  for (const [k, v] of Object.entries(out.labels)) if (v === "") delete out.labels[k];
  return out;
}

/**
 * The README and docs/*.md stand alone in a clone: every link is relative,
 * stays inside the repository and lands on a file that exists (and on a
 * heading of it, when it names one). Web links are refused, except examples on
 * localhost / 127.0.0.1. Code (fenced blocks, inline spans) is not a link.
 */
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals } from "./_assert.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The documents checked: the README and every Markdown file under docs/. */
function documents(): string[] {
  const docs = [...Deno.readDirSync(join(ROOT, "docs"))]
    .filter((e) => e.isFile && e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`);
  return ["README.md", ...docs.sort()];
}

/** The text with fenced code blocks blanked (lines kept, so line numbers stay right). */
function withoutFences(md: string): string {
  let fence: string | null = null;
  return md.split("\n").map((line) => {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length) fence = null;
      return "";
    }
    if (m) fence = m[1];
    return m ? "" : line;
  }).join("\n");
}

/** Prose only: fenced blocks blanked and inline code spans reduced to a placeholder. */
function prose(md: string): string {
  return withoutFences(md).replace(/(`+)[\s\S]*?[^`]\1(?!`)/g, "code");
}

/** GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen, repeats numbered. */
function anchors(md: string): Set<string> {
  const counts = new Map<string, number>();
  const found = new Set<string>();
  for (const [, text] of withoutFences(md).matchAll(/^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const plain = text.replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/[`*]/g, "");
    const slug = plain.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replaceAll(" ", "-");
    const n = counts.get(slug) ?? 0;
    counts.set(slug, n + 1);
    found.add(n === 0 ? slug : `${slug}-${n}`);
  }
  for (const [, id] of md.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) found.add(id);
  return found;
}

/** Every link target of a document, with its line. */
function links(md: string): { line: number; target: string }[] {
  const text = prose(md);
  const lineOf = (index: number) => text.slice(0, index).split("\n").length;
  const found: { line: number; target: string }[] = [];
  const patterns = [
    // [text](target "title"), ![alt](target): the text may hold one level of brackets.
    /!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g,
    // [label]: target
    /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm,
    // <scheme:...> autolinks
    /<([a-z][a-z0-9+.-]*:[^>\s]+)>/gi,
    // GitHub turns bare web addresses into links too.
    /(?<![<(])\b((?:https?:\/\/|www\.)[^\s<>)`|]+)/gi,
  ];
  for (const pattern of patterns) {
    for (const m of text.matchAll(pattern)) {
      // As GitHub does, trailing punctuation is not part of a bare address.
      found.push({ line: lineOf(m.index), target: m[1].replace(/[.,:;!?*_~'"]+$/, "") });
    }
  }
  return found;
}

/** A web address a reader can follow from a clone: only the local service (examples). */
function isLocalExample(target: string): boolean {
  try {
    const url = new URL(target);
    return (url.protocol === "http:" || url.protocol === "https:") &&
      (url.hostname === "localhost" || url.hostname === "127.0.0.1");
  } catch {
    return false;
  }
}

/** What is wrong with the links of `file` (whose text is `md`): one line each. */
function linkProblems(file: string, md: string): string[] {
  const problems: string[] = [];
  for (const { line, target } of links(md)) {
    const where = `${file}:${line}: ${target}`;
    if (/^[a-z][a-z0-9+.-]*:|^www\.|^\/\//i.test(target)) {
      if (!isLocalExample(target)) problems.push(`${where}: leaves the repository`);
      continue;
    }
    if (target.startsWith("/")) {
      problems.push(`${where}: absolute path; link relative to the document`);
      continue;
    }
    const [pathPart, anchor] = target.split("#", 2);
    const path = pathPart ? normalize(join(dirname(file), decodeURIComponent(pathPart))) : file;
    if (relative(ROOT, join(ROOT, path)).startsWith("..")) {
      problems.push(`${where}: outside the repository`);
      continue;
    }
    let text: string;
    try {
      const info = Deno.statSync(join(ROOT, path));
      text = info.isFile && path.endsWith(".md") ? Deno.readTextFileSync(join(ROOT, path)) : "";
    } catch {
      problems.push(`${where}: no such file in the repository`);
      continue;
    }
    if (anchor && path.endsWith(".md") && !anchors(text).has(anchor)) {
      problems.push(`${where}: no heading #${anchor} in ${path}`);
    }
  }
  return problems;
}

Deno.test("the link check refuses what a clone cannot follow and accepts what it can", () => {
  const sample = [
    "# Levelguard",
    "## Two commands",
    "See [the spec](../shared/SPEC.md), [`prom-client`](https://github.com/siimon/prom-client),",
    "<https://k6.io/docs/>, https://example.com/x, [gone](docs/nope.md) and [here](#no-such-heading).",
    "Fine: [api](docs/api.md), [commands](#two-commands), [top](README.md#levelguard),",
    "<http://localhost:8000/admin/health>, http://127.0.0.1:8000/readyz and `https://levelguard.example.com`.",
    "```",
    "curl https://staging.example.com/api/v1/health/status",
    "```",
  ].join("\n");
  assertEquals(
    linkProblems("README.md", sample).map((p) => p.replace(/^README\.md:\d+: /, "")).sort(),
    [
      "../shared/SPEC.md: outside the repository",
      "docs/nope.md: no such file in the repository",
      "#no-such-heading: no heading #no-such-heading in README.md",
      "https://github.com/siimon/prom-client: leaves the repository",
      "https://k6.io/docs/: leaves the repository",
      "https://example.com/x: leaves the repository",
    ].sort(),
  );
});

Deno.test("every link of the README and docs/*.md stays in the repository and lands", () => {
  const files = documents();
  assert(files.length >= 2, files.join(", "));
  let count = 0;
  const problems = files.flatMap((file) => {
    const md = Deno.readTextFileSync(join(ROOT, file));
    count += links(md).length;
    return linkProblems(file, md);
  });
  assert(count >= 20, `only ${count} links found: the parser missed them`);
  assertEquals(problems, []);
});

/** The docs/*.md pages a document links to (by repository path), whatever the anchor. */
function linkedPages(file: string, md: string): Set<string> {
  const pages = new Set<string>();
  for (const { target } of links(md)) {
    if (/^[a-z][a-z0-9+.-]*:|^www\.|^\/\/|^\//i.test(target)) continue;
    const pathPart = target.split("#", 1)[0];
    if (!pathPart) continue;
    const path = normalize(join(dirname(file), decodeURIComponent(pathPart)));
    if (/^docs\/[^/]+\.md$/.test(path)) pages.add(path);
  }
  return pages;
}

/** The docs/*.md pages a reader cannot reach from the README in at most two links. */
function orphans(read: (file: string) => string, pages: string[]): string[] {
  const first = linkedPages("README.md", read("README.md"));
  const reached = new Set(first);
  for (const page of first) for (const next of linkedPages(page, read(page))) reached.add(next);
  return pages.filter((page) => !reached.has(page));
}

Deno.test("the orphan check follows links from the README and from the pages it links, no further", () => {
  const files: Record<string, string> = {
    "README.md": "See [api](docs/api.md#errors) and [web](https://example.com/docs/x.md).",
    "docs/api.md": "Back to the [README](../README.md); [scaling](scaling.md).",
    "docs/scaling.md": "[deep](deep.md)",
    "docs/deep.md": "Linked only from a page two links away.",
    "docs/lost.md": "[api](api.md), but nothing links here.",
  };
  assertEquals(orphans((f) => files[f], Object.keys(files).filter((f) => f.startsWith("docs/"))), [
    "docs/deep.md",
    "docs/lost.md",
  ]);
});

Deno.test("the README is at most 200 lines and every docs/*.md page is reachable from it", () => {
  const read = (file: string) => Deno.readTextFileSync(join(ROOT, file));
  const lines = read("README.md").split("\n").length - 1;
  assert(lines <= 200, `README.md has ${lines} lines; move the detail into docs/`);
  assertEquals(orphans(read, documents().filter((f) => f.startsWith("docs/"))), []);
});

Deno.test("docs/dependencies.md explains every import of deno.json", () => {
  const { imports } = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))) as {
    imports: Record<string, string>;
  };
  const md = Deno.readTextFileSync(join(ROOT, "docs/dependencies.md"));
  const listed = new Set(
    md.split("\n").filter((line) => line.startsWith("| `"))
      .flatMap((line) => [...line.split("|")[1].matchAll(/`([^`]+)`/g)].map((m) => m[1])),
  );
  assertEquals(Object.keys(imports).filter((name) => !listed.has(name)), []);
});

/** Reading a Prometheus text exposition in tests: families and sample values. */

/** One scrape, parsed. */
export interface Scrape {
  text: string;
  /** Families declared with `# TYPE`, with their type. */
  families: Map<string, string>;
  /** A sample's value (labels matched exactly, in any order), or undefined when absent. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every sample of a name: its labels and value. */
  samples(name: string): { labels: Record<string, string>; value: number }[];
}

/** Parses the text format. */
export function parseScrape(text: string): Scrape {
  const families = new Map<string, string>();
  const all: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1], type[2]);
    if (line === "" || line.startsWith("#")) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]] = m[2];
    }
    all.push({ name: sample[1], labels, value: Number(sample[3]) });
  }
  const same = (a: Record<string, string>, b: Record<string, string>) =>
    Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v);
  return {
    text,
    families,
    value: (name, labels = {}) => all.find((s) => s.name === name && same(s.labels, labels))?.value,
    samples: (name) => all.filter((s) => s.name === name).map(({ labels, value }) => ({ labels, value })),
  };
}

/** Formatting for the pages: plain functions of plain values. */

/** 0.99499 → "99.50 %"; null → "—". */
export function percent(rate: number | null | undefined, digits = 2): string {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(digits)} %`;
}

/** 12345 → "12,345". */
export function count(n: number | null | undefined): string {
  return n === null || n === undefined ? "—" : n.toLocaleString("en");
}

/** An ISO time as "2026-11-29 10:29:41 UTC". */
export function utc(iso: string | null | undefined): string {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "—";
}

/** How long ago (or in how long) `iso` is from `now`: "3 min ago", "in 2 min". */
export function relative(iso: string | null | undefined, now: number): string {
  if (!iso) return "—";
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  const [value, unit] = abs < 60
    ? [abs, "s"]
    : abs < 3600
    ? [Math.round(abs / 60), "min"]
    : abs < 86_400
    ? [Math.round(abs / 3600), "h"]
    : [Math.round(abs / 86_400), "d"];
  if (abs < 5) return "just now";
  return seconds < 0 ? `${value} ${unit} ago` : `in ${value} ${unit}`;
}

/** Milliseconds as "45 ms" or "2.3 s". */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** "LEVEL_MISMATCH" → "Level mismatch". */
export function kindLabel(kind: string): string {
  const words = kind.toLowerCase().split("_").join(" ");
  return words[0].toUpperCase() + words.slice(1);
}

/** A query string from the non-empty values (for links that keep the page's state). */
export function query(params: Record<string, string | number | null | undefined>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)]))}` : "";
}

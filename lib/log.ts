/** Structured logging: one JSON object per line on stdout (errors on stderr). */

type Level = "debug" | "info" | "warn" | "error";

let quiet = false;

/** Silences info/debug lines (tests turn this on to keep output readable). */
export function setQuiet(value: boolean) {
  quiet = value;
}

/** Writes one JSON log line. */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}) {
  if (quiet && (level === "info" || level === "debug")) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

/** Serialises an unknown error for a log line (with its stack). */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof Error) return { error: err.message, error_name: err.name, stack: err.stack };
  return { error: String(err) };
}

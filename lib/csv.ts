/**
 * CSV fields (RFC 4180) that a spreadsheet opens as text, never as a formula
 * (OWASP "CSV Injection"): a field beginning with `=`, `+`, `-`, `@`, a tab or a
 * carriage return gets a leading single quote and is quoted. Today's exports
 * hold numbers, enums and JSON, so nothing is changed by it; a future text
 * column (a name, an email) cannot turn a download into a formula.
 */

// What Excel, LibreOffice Calc and Google Sheets read as the start of a formula.
const FORMULA_START = /^[=+\-@\t\r]/;
// What needs quoting in RFC 4180: a separator, a quote or a line break.
const NEEDS_QUOTES = /[",\n\r]/;

/** One CSV field: JSON for anything but a string or a number, quoted where needed, never a formula. */
export function csvField(value: unknown): string {
  const text = typeof value === "string"
    ? value
    : typeof value === "number" || typeof value === "bigint"
    ? String(value)
    : JSON.stringify(value) ?? "";
  if (FORMULA_START.test(text)) return `"'${text.replace(/"/g, '""')}"`;
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One CSV line (without its line break) of `values`, each through `csvField`. */
export function csvRow(values: readonly unknown[]): string {
  return values.map(csvField).join(",");
}

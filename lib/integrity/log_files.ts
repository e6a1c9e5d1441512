/** One JSON file per check under LOG_DIR/integrity_checks/: written atomically, pruned by age. */
import { join } from "node:path";
import type { CheckRecord } from "./store.ts";

/** How many violations a log file lists at most (the database has them all). */
export const LOG_SAMPLE_LIMIT = 100;

const FILE_PATTERN = /^check_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z_(\d+)\.json$/;

/** The directory the check logs go to. */
export function checkLogDir(logDir: string): string {
  return join(logDir, "integrity_checks");
}

function fileName(check: CheckRecord): string {
  const stamp = check.started_at.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `check_${stamp}_${check.id}.json`;
}

/**
 * Writes the log of a check: summary plus a sample of its violations. A temp
 * file renamed into place, so readers never see half a file. Returns the path.
 */
export async function writeCheckLog(
  logDir: string,
  check: CheckRecord,
  sample: unknown[],
): Promise<string> {
  const dir = checkLogDir(logDir);
  await Deno.mkdir(dir, { recursive: true });
  const path = join(dir, fileName(check));
  const tmp = join(dir, `.${fileName(check)}.${crypto.randomUUID()}.tmp`);
  const body = {
    check,
    violations_sample: sample,
    sample_limit: LOG_SAMPLE_LIMIT,
    sample_truncated: (check.violation_count ?? 0) > sample.length,
  };
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(body, null, 2) + "\n");
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  return path;
}

/** Deletes check logs (and stray temp files) older than `days`; returns how many. */
export async function pruneCheckLogs(logDir: string, days: number, now = Date.now()): Promise<number> {
  const cutoff = now - days * 86_400_000;
  let removed = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(checkLogDir(logDir)));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
  for (const entry of entries) {
    if (!entry.isFile) continue;
    const path = join(checkLogDir(logDir), entry.name);
    const m = FILE_PATTERN.exec(entry.name);
    let at: number | null = null;
    if (m) at = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    else if (entry.name.endsWith(".tmp")) at = (await Deno.stat(path)).mtime?.getTime() ?? null;
    // Only our own files are ever deleted.
    if (at === null || at >= cutoff) continue;
    await Deno.remove(path).then(() => removed++, () => {});
  }
  return removed;
}

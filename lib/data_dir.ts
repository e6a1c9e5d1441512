/**
 * DATA_DIR and LOG_DIR at start-up. The embedded database belongs to one
 * process: two PGlite instances on one directory each keep their own copy of
 * the data in memory and overwrite each other's writes (acknowledged XP was
 * lost that way), so every process that opens it holds an exclusive lock on
 * `DATA_DIR/levelguard.lock` for its whole life, and a second one stops at once.
 */
import { join } from "node:path";
import { EnvironmentError } from "./errors.ts";
import { log } from "./log.ts";

/** A held lock; released when the process ends (or by `release`). */
export interface DataDirLock {
  release(): void;
}

/** Creates DATA_DIR when missing; a directory that cannot be created or written is one line. */
export async function ensureDataDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new EnvironmentError(`DATA_DIR ${dir} cannot be created: ${reason(err)}; set DATA_DIR`);
  }
}

/**
 * Takes the exclusive lock on DATA_DIR (non-blocking). `holder` says what to
 * do instead when another process has it (e.g. "stop it or set DATABASE_URL").
 */
export async function lockDataDir(dir: string, advice: string): Promise<DataDirLock> {
  await ensureDataDir(dir);
  const path = join(dir, "levelguard.lock");
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true, create: true });
  } catch (err) {
    throw new EnvironmentError(`DATA_DIR ${dir} is not writable: ${reason(err)}; set DATA_DIR`);
  }
  if (!(await file.tryLock(true))) {
    const pid = (await Deno.readTextFile(path).catch(() => "")).trim() || "unknown";
    file.close();
    throw new EnvironmentError(
      `DATA_DIR ${dir} is in use by another Levelguard process (pid ${pid}); ${advice}`,
    );
  }
  try {
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  } catch (err) {
    file.close();
    throw new EnvironmentError(`DATA_DIR ${dir} is not writable: ${reason(err)}; set DATA_DIR`);
  }
  return {
    release() {
      try {
        file.close();
      } catch { /* already closed */ }
    },
  };
}

/**
 * Checks LOG_DIR can take the check logs. Not fatal: checks are recorded in
 * the database either way, so an unwritable LOG_DIR is one warning at start.
 */
export async function checkLogDir(dir: string): Promise<boolean> {
  const probe = join(dir, `.write-test-${Deno.pid}`);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
    return true;
  } catch (err) {
    log(
      "warn",
      `LOG_DIR ${dir} is not writable (${
        reason(err)
      }): integrity checks run and are kept in the database, without JSON log files; set LOG_DIR`,
    );
    return false;
  }
}

function reason(err: unknown): string {
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotADirectory || err instanceof Deno.errors.AlreadyExists) {
    return "a file is in the way";
  }
  if (err instanceof Deno.errors.NotFound) return "a parent directory is missing";
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

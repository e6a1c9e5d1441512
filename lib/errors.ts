/**
 * Errors as values with a name. Domain errors say what went wrong, not how
 * HTTP answers it: `routes/problem.ts` maps each to a status in one place.
 * Start-up errors are explained in one line by whoever runs the process.
 */

/** One invalid field of a request. */
export interface FieldError {
  field: string;
  message: string;
}

/** Base class of the domain's errors; its message is safe to show a client. */
export abstract class DomainError extends Error {}

/** The input is malformed or a field is invalid. */
export class Invalid extends DomainError {
  override name = "Invalid";
  constructor(detail: string, readonly errors: FieldError[] = []) {
    super(detail);
  }
}

/** No, or no longer valid, credentials. */
export class Unauthenticated extends DomainError {
  override name = "Unauthenticated";
  constructor(detail = "Authentication required") {
    super(detail);
  }
}

/** Authenticated, but the role may not do this. */
export class Forbidden extends DomainError {
  override name = "Forbidden";
  constructor(detail = "Your role may not do this") {
    super(detail);
  }
}

/** The thing does not exist (or is not visible to the caller). */
export class NotFound extends DomainError {
  override name = "NotFound";
}

/** The request conflicts with the current state (e.g. seeding a database that has users). */
export class Conflict extends DomainError {
  override name = "Conflict";
}

/** An idempotency key was used before with a different request. */
export class KeyConflict extends DomainError {
  override name = "KeyConflict";
}

/** Refused for a while (too many failed sign-ins for one account); retrying after the wait may work. */
export class Throttled extends DomainError {
  override name = "Throttled";
  constructor(detail: string, readonly retryAfterSeconds: number) {
    super(detail);
  }
}

/** A dependency (the database) cannot serve the request now; retrying later may work. */
export class Unavailable extends DomainError {
  override name = "Unavailable";
  constructor(detail: string, readonly retryAfterSeconds = 5, cause?: unknown) {
    super(detail, { cause });
  }
}

/** Refused because the database is unreachable (counted apart from other refusals). */
export class DatabaseDown extends Unavailable {
  override name = "DatabaseDown";
}

/** Base class of failures that end a process with one line on stderr and no stack trace. */
export abstract class StartupError extends Error {}

/** A configuration variable is invalid; the message names it. */
export class ConfigError extends StartupError {
  override name = "ConfigError";
}

/** The database cannot be reached (or refused us). */
export class DatabaseUnavailable extends StartupError {
  override name = "DatabaseUnavailable";
}

/** An applied migration file was changed afterwards. */
export class MigrationTampered extends StartupError {
  override name = "MigrationTampered";
}

/** Bad command-line arguments (exit code 2, with the usage). */
export class UsageError extends StartupError {
  override name = "UsageError";
}

/** Something the process needs from its environment is missing (a port, a directory, a lock). */
export class EnvironmentError extends StartupError {
  override name = "EnvironmentError";
}

/** True for errors whose message is the whole story: print one line, no stack. */
export function isOneLine(err: unknown): err is Error {
  return err instanceof StartupError || err instanceof DomainError;
}

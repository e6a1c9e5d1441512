/** Domain errors as values with a name; routes map them to problem+json in one place. */

/** One invalid field of a request. */
export interface FieldError {
  field: string;
  message: string;
}

/** Base class: carries the HTTP status the error maps to. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

/** 400: the request is malformed or a field is invalid. */
export class Invalid extends AppError {
  override name = "Invalid";
  constructor(detail: string, errors: FieldError[] = []) {
    super(400, "Invalid request", detail, errors);
  }
}

/** 401: no or bad credentials. */
export class Unauthorized extends AppError {
  override name = "Unauthorized";
  constructor(detail = "Authentication required") {
    super(401, "Unauthorized", detail, [], { "WWW-Authenticate": 'Bearer realm="levelguard"' });
  }
}

/** 403: authenticated, but the role is not allowed. */
export class Forbidden extends AppError {
  override name = "Forbidden";
  constructor(detail = "Your role may not do this") {
    super(403, "Forbidden", detail);
  }
}

/** 404: the thing does not exist (or is not visible to the caller). */
export class NotFound extends AppError {
  override name = "NotFound";
  constructor(detail: string) {
    super(404, "Not found", detail);
  }
}

/** 409: the request conflicts with current state. */
export class Conflict extends AppError {
  override name = "Conflict";
  constructor(detail: string) {
    super(409, "Conflict", detail);
  }
}

/** 413: the body is larger than allowed. */
export class PayloadTooLarge extends AppError {
  override name = "PayloadTooLarge";
  constructor(limit: number) {
    super(413, "Payload too large", `The request body must be at most ${limit} bytes`);
  }
}

/** 415: the body is not JSON. */
export class UnsupportedMediaType extends AppError {
  override name = "UnsupportedMediaType";
  constructor() {
    super(415, "Unsupported media type", "Send the body as application/json");
  }
}

/** 422: well-formed but cannot be processed (e.g. an idempotency key reused with another body). */
export class Unprocessable extends AppError {
  override name = "Unprocessable";
  constructor(detail: string) {
    super(422, "Unprocessable request", detail);
  }
}

/** 429: over the rate limit. */
export class TooManyRequests extends AppError {
  override name = "TooManyRequests";
  constructor(retryAfterSeconds: number, headers: Record<string, string> = {}) {
    super(429, "Too many requests", `Rate limit exceeded; retry in ${retryAfterSeconds} s`, [], {
      ...headers,
      "Retry-After": String(retryAfterSeconds),
    });
  }
}

/** 503: a dependency (the database) is not available. */
export class Unavailable extends AppError {
  override name = "Unavailable";
  constructor(detail: string) {
    super(503, "Service unavailable", detail);
  }
}

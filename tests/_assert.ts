/** Small assertion helpers over node:assert (JSR's @std/assert is not reachable from our machines). */
import assert from "node:assert/strict";

/** Deep equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assert.deepStrictEqual(plain(actual), plain(expected), message);
}

// postgres.js results are Array subclasses; compare them as plain arrays.
function plain<T>(value: T): T {
  return (Array.isArray(value) && Object.getPrototypeOf(value) !== Array.prototype ? [...value] : value) as T;
}

/** Truthiness. */
export function assert_(value: unknown, message?: string): asserts value {
  assert.ok(value, message);
}
export { assert_ as assert };

/** String matches a pattern. */
export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  assert.match(actual, pattern, message);
}

/** Runs `fn`, expects it to throw an instance of `type`, returns the error. */
export function assertThrows<E extends Error>(fn: () => unknown, type: new (...args: never[]) => E): E {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err}`);
    return err as E;
  }
  throw new assert.AssertionError({ message: `expected ${type.name} to be thrown` });
}

/** Awaits `fn`, expects a rejection with an instance of `type`, returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err}`);
    return err as E;
  }
  throw new assert.AssertionError({ message: `expected ${type.name} to be rejected` });
}

/** The rules of the dashboard's rollout form (lib/canary/dashboard_change.ts), without a database. */
import { assertEquals, assertThrows } from "./_assert.ts";
import { Forbidden, Invalid } from "../lib/errors.ts";
import {
  ADVANCE_OUTSIDE,
  cleanReason,
  REASON_MAX_CHARS,
  rolloutIntent,
} from "../lib/canary/dashboard_change.ts";

const INSIDE = { inRollout: true };
const OUTSIDE = { inRollout: false };

Deno.test("set takes a whole percentage from 0 to 100 and nothing else, naming the field", () => {
  for (const percent of ["0", "5", "100", "007"]) {
    assertEquals(rolloutIntent({ action: "set", percent }, OUTSIDE), {
      action: "set",
      percent: Number(percent),
      reason: null,
    });
  }
  for (const percent of [undefined, "", "101", "1000", "-1", "5.0", "1e2", " 5", "0x10", "５"]) {
    const err = assertThrows(() => rolloutIntent({ action: "set", percent }, INSIDE), Invalid);
    assertEquals(err.errors.map((e) => e.field), ["percent"], String(percent));
  }
});

Deno.test("an action the form does not have is invalid, naming the action", () => {
  for (const action of [undefined, "", "SET", "delete"]) {
    const err = assertThrows(() => rolloutIntent({ action, percent: "5" }, INSIDE), Invalid);
    assertEquals(err.errors.map((e) => e.field), ["action"], String(action));
  }
});

Deno.test("every admin may roll back or set; only admins in the rollout may advance", () => {
  assertEquals(rolloutIntent({ action: "rollback" }, OUTSIDE), {
    action: "rollback",
    percent: 0,
    reason: "rollback from the dashboard",
  });
  assertEquals(rolloutIntent({ action: "advance" }, INSIDE), { action: "advance", reason: null });
  const refused = assertThrows(() => rolloutIntent({ action: "advance", reason: "go" }, OUTSIDE), Forbidden);
  assertEquals(refused.message, ADVANCE_OUTSIDE);
});

Deno.test("the reason is kept as given, minus control characters, outer spaces and what passes 500 characters", () => {
  assertEquals(
    rolloutIntent({ action: "rollback", reason: "  p95 too high\r\n" }, INSIDE).reason,
    "p95 too high",
  );
  assertEquals(cleanReason("a\u0000b\tc"), "a b c");
  assertEquals(cleanReason(" \n "), null);
  assertEquals(cleanReason(undefined), null);
  assertEquals(cleanReason("x".repeat(600)), "x".repeat(REASON_MAX_CHARS));
  // A lone surrogate is made well-formed; a pair cut by the limit is dropped whole, not halved.
  assertEquals(cleanReason("ok \uD800"), "ok \uFFFD");
  const cut = cleanReason(`${"x".repeat(REASON_MAX_CHARS - 1)}😀`)!;
  assertEquals([cut.length, cut.isWellFormed()], [REASON_MAX_CHARS - 1, true]);
  assertEquals(cleanReason(`${"x".repeat(REASON_MAX_CHARS - 2)}😀`), `${"x".repeat(REASON_MAX_CHARS - 2)}😀`);
});

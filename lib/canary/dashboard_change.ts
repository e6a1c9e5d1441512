/**
 * The rules of the dashboard's rollout form: which change an admin's intent
 * makes (set a percentage, roll back to 0 %, advance one step when the canary
 * says so), who may ask for which, and the reason the audit log keeps. Every
 * admin may set or roll back, also from the "not enabled" page, so a 5 % canary
 * or a rollback to 0 % can be undone from the dashboard; advancing judges the
 * canary's figures, which are health data that only admins in the rollout see.
 * Refusals are named errors (Invalid, Forbidden, Conflict) that the route maps.
 */
import { Conflict, Forbidden, Invalid } from "../errors.ts";
import type { Sql } from "../db.ts";
import { advanceRollout } from "./advance.ts";
import { type RolloutChange, setRollout } from "./rollout.ts";
import { canaryReport } from "./verdict.ts";

/** The form's fields as posted (any may be missing). */
export interface RolloutForm {
  action?: string;
  percent?: string;
  reason?: string;
}

/** What the form asks for; `reason` is null when the admin gave none. */
export type RolloutIntent =
  | { action: "advance"; reason: string | null }
  | { action: "rollback" | "set"; percent: number; reason: string | null };

/** Characters of a reason kept in the audit log (the API's limit too). */
export const REASON_MAX_CHARS = 500;

/** Why an admin outside the rollout may not advance. */
export const ADVANCE_OUTSIDE =
  "Advancing needs the canary's verdict, which only admins in the rollout see: " +
  "set a percentage instead, or use deno task canary advance";

/**
 * A reason as the audit log keeps it: well-formed, control characters as
 * spaces, trimmed, at most 500 characters (never half a surrogate pair); null when empty.
 */
export function cleanReason(text: string | undefined): string | null {
  const clean = (text ?? "").toWellFormed().replace(/\p{Cc}/gu, " ").trim();
  let cut = clean.slice(0, REASON_MAX_CHARS);
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return cut.trimEnd() || null;
}

/**
 * The intent of a posted form for an admin in the rollout or not: throws
 * Invalid for anything but advance, rollback or set with a whole percentage
 * from 0 to 100, and Forbidden for an advance from outside the rollout.
 */
export function rolloutIntent(form: RolloutForm, { inRollout }: { inRollout: boolean }): RolloutIntent {
  const reason = cleanReason(form.reason);
  switch (form.action) {
    case "advance":
      if (!inRollout) throw new Forbidden(ADVANCE_OUTSIDE);
      return { action: "advance", reason };
    case "rollback":
      return { action: "rollback", percent: 0, reason: reason ?? "rollback from the dashboard" };
    case "set":
      if (!/^\d{1,3}$/.test(form.percent ?? "") || Number(form.percent) > 100) {
        throw new Invalid("Give a whole percentage from 0 to 100", [
          { field: "percent", message: "Must be a whole number from 0 to 100" },
        ]);
      }
      return { action: "set", percent: Number(form.percent), reason };
    default:
      throw new Invalid("Choose to set a percentage, advance or roll back", [
        { field: "action", message: "Must be set, advance or rollback" },
      ]);
  }
}

/** Who asks, for the audit log, and the soak time an advance is judged by (CANARY_STEP_HOURS). */
export interface DashboardActor {
  actorId: number;
  /** The admin's email. */
  actor: string;
  inRollout: boolean;
  soakHours: number;
}

/**
 * Makes the change the form asks for and returns it. An advance goes one step
 * from the step the canary judged over the last hour, as a compare-and-set (two
 * clicks at once make one change); it throws Conflict, writing nothing, when the
 * canary refuses or the rollout changed meanwhile.
 */
export async function changeFromDashboard(
  sql: Sql,
  form: RolloutForm,
  who: DashboardActor,
): Promise<RolloutChange> {
  const intent = rolloutIntent(form, who);
  const by = { source: "dashboard" as const, actorId: who.actorId, actor: who.actor };
  if (intent.action === "advance") {
    const report = await canaryReport(sql, { window: "1h", soakHours: who.soakHours });
    const reason = intent.reason ?? `advance: canary ${report.verdict}`;
    const outcome = await advanceRollout(sql, report, { ...by, reason, force: false });
    if (outcome.refused !== undefined) throw new Conflict(`Not advanced: ${outcome.refused}`);
    return outcome.change;
  }
  // Without a compare-and-set a change is always made.
  return (await setRollout(sql, { ...by, percent: intent.percent, reason: intent.reason }))!;
}

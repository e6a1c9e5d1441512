/**
 * `deno task canary status | set N | advance | rollback | evaluate`: the
 * dashboard's canary rollout from the command line, with the plan's steps,
 * the canary verdict and the soak time; every change audited.
 */
import { z } from "zod";
import { advanceRollout } from "../lib/canary/advance.ts";
import { CANARY_WINDOWS, type CanaryReport, canaryReport, type CanaryWindow } from "../lib/canary/verdict.ts";
import { type RolloutChange, setRollout } from "../lib/canary/rollout.ts";
import type { Queryable } from "../lib/db.ts";
import { Conflict, UsageError } from "../lib/errors.ts";
import { setQuiet } from "../lib/log.ts";
import { runTask } from "./_run.ts";

/** Exit codes of `evaluate` (and `status`) besides 0 = proceed; 1 is a failure, 2 bad usage. */
export const EXIT_INVESTIGATE = 3;
export const EXIT_ROLLBACK = 4;

const COMMANDS = ["status", "set", "advance", "rollback", "evaluate"] as const;
const windows = Object.keys(CANARY_WINDOWS) as [CanaryWindow, ...CanaryWindow[]];

await runTask(
  {
    name: "canary",
    summary: "Shows, sets, advances, rolls back or evaluates the dashboard's canary rollout.",
    positionals: "status | set N | advance | rollback | evaluate",
    options: {
      reason: { type: "string", value: "TEXT", help: "why (kept in the audit log with the change)" },
      force: { type: "boolean", help: "advance although the verdict is not proceed or the step is young" },
      window: { type: "string", value: "W", help: `the canary's window: ${windows.join(", ")} (default 1h)` },
      by: { type: "string", value: "EMAIL", help: "the admin making the change (default: cli:<your user>)" },
    },
    schema: z.object({
      reason: z.string().trim().min(1).max(500).regex(/^[^\p{Cc}]*$/u, "must not contain control characters")
        .optional(),
      force: z.boolean().default(false),
      window: z.enum(windows, { error: `must be one of ${windows.join(", ")}` }).default("1h"),
      by: z.email().optional(),
      // Last: a bad option value is reported before a missing command.
      _: z.tuple([z.enum(COMMANDS, { error: `the command is one of ${COMMANDS.join(", ")}` })]).rest(
        z.string(),
      ),
    }).superRefine((v, ctx) => {
      const [command, ...rest] = v._;
      const wanted = command === "set" ? 1 : 0;
      if (rest.length !== wanted) {
        ctx.addIssue({
          code: "custom",
          path: ["_"],
          message: command === "set"
            ? "set needs one percentage, e.g. set 5"
            : `${command} takes no argument`,
        });
      } else if (command === "set" && (!/^\d{1,3}$/.test(rest[0]) || Number(rest[0]) > 100)) {
        ctx.addIssue({
          code: "custom",
          path: ["_"],
          message: "the percentage is a whole number from 0 to 100",
        });
      }
    }),
    notes: [
      "steps: 5 -> 25 -> 50 -> 100 %. advance refuses unless the verdict is proceed and the step has run",
      "CANARY_STEP_HOURS (default 24), or with --force; from 0 % it starts the canary at 5 %.",
      "exit codes (status, evaluate): 0 proceed, 3 investigate, 4 rollback; 1 failed, 2 bad usage.",
      "example: deno task canary set 5 --reason 'canary start' && deno task canary advance",
    ],
  },
  { database: "migrated", whileServerRuns: "use PUT /api/v1/admin/rollout on the running server" },
  async ({ args, config, db }) => {
    setQuiet(true);
    const [command, value] = args._;
    const report = () => canaryReport(db.sql, { window: args.window, soakHours: config.CANARY_STEP_HOURS });
    if (command === "status" || command === "evaluate") {
      const r = await report();
      console.log(command === "status" ? describeStatus(r) : describeVerdict(r));
      return r.verdict === "proceed" ? 0 : r.verdict === "investigate" ? EXIT_INVESTIGATE : EXIT_ROLLBACK;
    }
    const actor = await actorOf(db.sql, args.by);
    let change: RolloutChange | null;
    if (command === "advance") {
      const r = await report();
      const reason = args.reason ?? `advance (canary ${r.verdict}${args.force ? ", forced" : ""})`;
      const outcome = await advanceRollout(db.sql, r, { force: args.force, reason, source: "cli", ...actor });
      if (outcome.refused !== undefined) throw new Conflict(`not advanced: ${outcome.refused}`);
      change = outcome.change;
    } else {
      const percent = command === "set" ? Number(value) : 0;
      change = await setRollout(db.sql, { percent, reason: args.reason ?? null, source: "cli", ...actor });
    }
    const { from, to, actor: by, reason } = change!;
    console.log(`rollout: ${from} % -> ${to} % (by ${by}${reason ? `: ${reason}` : ""})`);
  },
);

/** The admin named by --by, or the operating-system user. */
async function actorOf(q: Queryable, email: string | undefined) {
  if (!email) {
    return { actorId: null, actor: `cli:${Deno.env.get("USER") ?? Deno.env.get("LOGNAME") ?? "unknown"}` };
  }
  const [row] = await q<{ id: number; email: string }[]>`
    SELECT id, email FROM users WHERE lower(email) = lower(${email}) AND role = 'ADMIN' AND is_active`;
  if (!row) throw new UsageError(`--by ${email} is not an active admin`);
  return { actorId: row.id, actor: row.email };
}

function show(value: number | null, unit: "ratio" | "ms"): string {
  if (value === null) return "no data";
  return unit === "ms" ? `${value.toFixed(1)} ms` : `${(value * 100).toFixed(2)} %`;
}

function describeVerdict(r: CanaryReport): string {
  const rows = r.metrics.map((m) =>
    `  ${m.name.padEnd(24)} ${show(m.value, m.unit).padStart(10)}  baseline ${show(m.baseline, m.unit)}, ` +
    `${m.past_threshold} past ${show(m.threshold, m.unit)}  (${m.samples} samples)  ${m.verdict}`
  );
  return [`canary over the last ${r.window}: ${r.verdict}`, ...rows, ...r.reasons.map((x) => `  - ${x}`)]
    .join("\n");
}

function describeStatus(r: CanaryReport): string {
  const { percent, next_step, step_started_at, soaked, soak_hours } = r.rollout;
  const step = step_started_at
    ? `since ${step_started_at}${soaked ? "" : ` (soaking: ${soak_hours} h needed)`}`
    : "never changed since installation";
  const next = next_step === null ? "at the last step" : `next step ${next_step} %`;
  return `rollout: ${percent} % of admins, ${step}; ${next}\n${describeVerdict(r)}`;
}

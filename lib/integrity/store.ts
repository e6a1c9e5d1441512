/** Recording integrity checks: one `integrity_checks` row per run, its violations, history pruning. */
import { z } from "zod";
import type { Queryable } from "../db.ts";
import { VIOLATION_KINDS, type ViolationKind } from "../model.ts";
import type { ScanCounts } from "./scan.ts";
import { consistencyRate, statusFor } from "./status.ts";

/** What started a check. */
export const TRIGGERS = ["schedule", "manual", "cli", "startup", "repair"] as const;
/** One trigger. */
export type Trigger = typeof TRIGGERS[number];

/** How a run ended (`running` while it is in progress). */
export type Outcome = "running" | "success" | "failure" | "skipped";

const countsByKind = z.strictObject(
  Object.fromEntries(VIOLATION_KINDS.map((k) => [k, z.int()])) as Record<ViolationKind, z.ZodInt>,
);

/** One check as the API returns it (also the JSON log's summary): the schema is the type. */
export const checkRecordSchema = z.strictObject({
  id: z.int(),
  trigger: z.enum(TRIGGERS),
  /** The one student a scoped check looked at; null for a full check. */
  scope_user_id: z.int().nullable(),
  outcome: z.enum(["running", "success", "failure", "skipped"]),
  status: z.enum(["healthy", "degraded", "critical"]).nullable(),
  started_at: z.iso.datetime(),
  finished_at: z.iso.datetime().nullable(),
  duration_ms: z.number().nullable(),
  pairs_checked: z.int().nullable(),
  consistent_pairs: z.int().nullable(),
  violation_count: z.int().nullable(),
  consistency_rate: z.number().min(0).max(1).nullable(),
  counts_by_kind: countsByKind.nullable(),
  timings: z.record(z.string(), z.number()).nullable(),
  error: z.string().nullable(),
  /** Where a full check read the data: the primary, or the replica (DATABASE_REPLICA_URL). */
  read_from: z.enum(["primary", "replica"]).nullable(),
  /** The replica's replay position its snapshot had (a PostgreSQL LSN), when it read there. */
  replica_lsn: z.string().nullable(),
  /** How far behind the primary that replica was, in seconds. */
  replica_lag_s: z.number().nullable(),
});

/** One check. */
export type CheckRecord = z.infer<typeof checkRecordSchema>;

/** Columns of a CheckRecord, timestamps as ISO strings. */
const COLUMNS = `id, trigger, scope_user_id, outcome, status,
  iso_utc(started_at) AS started_at, iso_utc(finished_at) AS finished_at,
  duration_ms, pairs_checked, consistent_pairs, violation_count, consistency_rate, counts_by_kind, timings, error,
  read_from, replica_lsn::text AS replica_lsn, replica_lag_s`;

/** The select list of a CheckRecord (for queries in other modules). */
export function checkColumns(q: Queryable) {
  return q.unsafe(COLUMNS);
}

/** Inserts the row of a run that starts now; returns its id. */
export async function insertRunning(
  q: Queryable,
  trigger: Trigger,
  scopeUserId: number | null,
): Promise<number> {
  const [row] = await q<{ id: number }[]>`
    INSERT INTO integrity_checks (trigger, scope_user_id, outcome)
    VALUES (${trigger}, ${scopeUserId}, 'running') RETURNING id`;
  return row.id;
}

/** Records a run that did not scan because another instance held the scan lock. */
export async function recordSkipped(q: Queryable, trigger: Trigger, reason: string): Promise<CheckRecord> {
  const [row] = await q<CheckRecord[]>`
    INSERT INTO integrity_checks (trigger, outcome, finished_at, duration_ms, error)
    VALUES (${trigger}, 'skipped', now(), 0, ${reason})
    RETURNING ${checkColumns(q)}`;
  return row;
}

/** Marks a running check as finished with the scan's counts. */
export async function recordSuccess(
  q: Queryable,
  id: number,
  counts: ScanCounts,
  durationMs: number,
  timings: Record<string, number>,
  readFrom: ReadPosition = { from: "primary" },
) {
  const rate = consistencyRate(counts.consistentPairs, counts.pairsChecked);
  const lsn = readFrom.from === "replica" ? readFrom.lsn : null;
  const lag = readFrom.from === "replica" ? readFrom.lagS : null;
  await q`
    UPDATE integrity_checks SET
      outcome = 'success', status = ${statusFor(rate)}, finished_at = now(), duration_ms = ${durationMs},
      pairs_checked = ${counts.pairsChecked}, consistent_pairs = ${counts.consistentPairs},
      violation_count = ${counts.violationCount}, consistency_rate = ${rate},
      counts_by_kind = ${q.json(counts.countsByKind)}, timings = ${q.json(timings)},
      read_from = ${readFrom.from}, replica_lsn = ${lsn}::pg_lsn, replica_lag_s = ${lag}
    WHERE id = ${id} AND outcome = 'running'`; // a check recorded as interrupted (and announced) stays so
}

/** Where a check read its data. */
export type ReadPosition = { from: "primary" } | { from: "replica"; lsn: string; lagS: number };

/** Marks a running check as failed, with the cause. */
export async function recordFailure(q: Queryable, id: number, error: string, durationMs: number) {
  await q`
    UPDATE integrity_checks SET outcome = 'failure', finished_at = now(), duration_ms = ${durationMs},
      error = ${error.slice(0, 2000)}
    WHERE id = ${id} AND outcome = 'running'`;
}

/**
 * Full checks left `running` by a process that died mid-scan become failures.
 * Only call while holding the scan lock: then no full check can be running.
 */
export async function closeInterrupted(q: Queryable): Promise<CheckRecord[]> {
  return [
    ...await q<CheckRecord[]>`
    UPDATE integrity_checks SET outcome = 'failure', finished_at = now(),
      error = 'interrupted: the process ended during the scan'
    WHERE outcome = 'running' AND scope_user_id IS NULL
    RETURNING ${checkColumns(q)}`,
  ];
}

/** One check by id. */
export async function getCheck(q: Queryable, id: number): Promise<CheckRecord | null> {
  const [row] = await q<CheckRecord[]>`SELECT ${checkColumns(q)} FROM integrity_checks WHERE id = ${id}`;
  return row ?? null;
}

/** Where full checks stood when a caller began waiting for another instance's check. */
export interface FullCheckMark {
  /** The newest full check's id then (0: none). */
  last: number;
  /** The full check running then, if any (its id is at most `last`). */
  running: number | null;
}

/** Marks where full checks stand now (see fullCheckFinishedSince). */
export async function markFullChecks(q: Queryable): Promise<FullCheckMark> {
  const [row] = await q<{ last: number; running: number | null }[]>`
    SELECT coalesce(max(id), 0)::bigint AS last, max(id) FILTER (WHERE outcome = 'running') AS running
    FROM integrity_checks WHERE scope_user_id IS NULL`;
  return { last: Number(row.last), running: row.running === null ? null : Number(row.running) };
}

/**
 * The newest full check finished since `mark`: the one running then, or one
 * started after it; null when the one running then never finished (its
 * instance died).
 */
export async function fullCheckFinishedSince(q: Queryable, mark: FullCheckMark): Promise<CheckRecord | null> {
  const [row] = await q<CheckRecord[]>`
    SELECT ${checkColumns(q)} FROM integrity_checks
    WHERE scope_user_id IS NULL AND outcome IN ('success', 'failure')
      AND (id > ${mark.last} OR id = ${mark.running ?? 0})
    ORDER BY id DESC LIMIT 1`;
  return row ?? null;
}

/** The first `limit` violations of a check (for the JSON log's sample). */
export async function sampleViolations(q: Queryable, checkId: number, limit: number) {
  return await q<{ kind: ViolationKind; student_id: number; specialization_id: string; details: unknown }[]>`
    SELECT kind, student_id, specialization_id, details FROM integrity_violations
    WHERE check_id = ${checkId} ORDER BY id LIMIT ${limit}`;
}

/** Deletes checks (and, by cascade, their violations) older than `days`; returns how many. */
export async function pruneHistory(q: Queryable, days: number): Promise<number> {
  const result = await q`
    DELETE FROM integrity_checks
    WHERE started_at < now() - make_interval(days => ${days}) AND outcome <> 'running'`;
  return result.count;
}

/** Records a run that could not even start (the database was down then), once it is back. */
export async function recordUnstarted(
  q: Queryable,
  trigger: Trigger,
  at: Date,
  error: string,
): Promise<CheckRecord> {
  const [row] = await q<CheckRecord[]>`
    INSERT INTO integrity_checks (trigger, outcome, started_at, finished_at, duration_ms, error)
    VALUES (${trigger}, 'failure', ${at}, ${at}, 0, ${("could not start: " + error).slice(0, 2000)})
    RETURNING ${checkColumns(q)}`;
  return row;
}

/** Marks one running check as failed because this process is stopping. */
export async function recordInterrupted(q: Queryable, id: number): Promise<CheckRecord | null> {
  const [row] = await q<CheckRecord[]>`
    UPDATE integrity_checks SET outcome = 'failure', finished_at = now(),
      duration_ms = extract(epoch FROM now() - started_at) * 1000,
      error = 'interrupted: the process was stopped during the scan'
    WHERE id = ${id} AND outcome = 'running'
    RETURNING ${checkColumns(q)}`;
  return row ?? null;
}

/**
 * Status-change notifications: when a full check this instance recorded ends
 * in another state than the full check recorded before it (healthy, degraded,
 * critical, or failing), one JSON event is POSTed to each ALERT_WEBHOOK_URLS
 * entry. Full checks never overlap across instances and each is recorded by
 * exactly one of them, so each change is sent once. Failures without a scan
 * count too (a run that could not start, recorded once the database is back;
 * an interrupted check): whoever writes their row tells the notifier, so a
 * recovery is never announced without the failure before it. Delivery runs in
 * the background, in order, with a timeout and retries; failures are logged
 * and counted, never thrown at the check.
 */
import type { Counter } from "prom-client";
import type { Queryable } from "./db.ts";
import { errorFields, log } from "./log.ts";
import type { CheckRecord } from "./integrity/store.ts";

/** A full check's state for notifications: its status, or `failing` when it did not finish. */
export type NotifiedState = "healthy" | "degraded" | "critical" | "failing" | "unknown";

/** The JSON body POSTed to each webhook (Slack-compatible through `text`). */
export interface StatusChangeEvent {
  text: string;
  event: "levelguard.status_changed";
  status_before: NotifiedState;
  status_after: NotifiedState;
  consistency_rate: number | null;
  violation_count: number | null;
  violations_by_kind: Record<string, number> | null;
  check_id: number;
  trigger: string;
  finished_at: string | null;
  error: string | null;
  dashboard_url: string | null;
}

/** Any event POSTed to the webhooks: a `text` for chat tools, its name, and fields. */
export type OutgoingEvent = { text: string; event: string; check_id?: number } & object;

/** How deliveries are made. */
export interface NotifierOptions {
  urls: readonly URL[];
  /** Where people open the dashboard (PUBLIC_URL); no link without it. */
  publicUrl?: string;
  /** `levelguard_notifications_total{result}`. */
  counter?: Counter<"result">;
  /** Waits before each retry (default 0.25 s, 1 s, 4 s: four attempts in all). */
  retryDelaysMs?: readonly number[];
  /** Per attempt (default 5 s). */
  timeoutMs?: number;
}

const DEFAULT_RETRY_DELAYS_MS = [250, 1000, 4000];
const DEFAULT_TIMEOUT_MS = 5000;

/** The state a recorded full check puts the service in. */
export function stateOf(check: Pick<CheckRecord, "outcome" | "status">): NotifiedState {
  if (check.outcome === "failure") return "failing";
  return check.status ?? "unknown";
}

/** Whether going from `before` to `after` is worth telling someone. */
export function isChange(before: NotifiedState, after: NotifiedState): boolean {
  if (before === after || after === "unknown") return false;
  // The very first check: only bad news is news.
  return before !== "unknown" || after !== "healthy";
}

/** The event for a change, with a one-line `text` for chat tools. */
export function statusChangeEvent(
  check: CheckRecord,
  before: NotifiedState,
  publicUrl?: string,
): StatusChangeEvent {
  const after = stateOf(check);
  const dashboard = publicUrl ? `${publicUrl}/admin/health` : null;
  const detail = after === "failing"
    ? `integrity check #${check.id} failed: ${check.error ?? "unknown error"}`
    : `consistency ${((check.consistency_rate ?? 0) * 100).toFixed(2)} %, ` +
      `${check.violation_count ?? 0} violation(s), check #${check.id}`;
  const link = dashboard ? ` <${dashboard}|Open the dashboard>` : "";
  return {
    text: `Levelguard is ${after} (was ${before}): ${detail}.${link}`,
    event: "levelguard.status_changed",
    status_before: before,
    status_after: after,
    consistency_rate: check.consistency_rate,
    violation_count: check.violation_count,
    violations_by_kind: check.counts_by_kind,
    check_id: check.id,
    trigger: check.trigger,
    finished_at: check.finished_at,
    error: check.error,
    dashboard_url: dashboard,
  };
}

/**
 * The state before `check`: of the full checks recorded before it (smaller
 * ids: final, so every instance would decide the same), the one that finished
 * last. A run that could not start is recorded late, with the time it failed;
 * `stale` when a check recorded before it finished after it: old news, not a
 * change (another instance already ran a check after that outage).
 */
async function stateBefore(
  q: Queryable,
  check: CheckRecord,
): Promise<{ state: NotifiedState; stale: boolean }> {
  const [row] = await q<Pick<CheckRecord, "outcome" | "status" | "finished_at">[]>`
    SELECT outcome, status, iso_utc(finished_at) AS finished_at FROM integrity_checks
    WHERE scope_user_id IS NULL AND outcome IN ('success', 'failure') AND id < ${check.id}
    ORDER BY integrity_checks.finished_at DESC NULLS LAST, id DESC LIMIT 1`;
  if (!row) return { state: "unknown", stale: false };
  const later = row.finished_at !== null && check.finished_at !== null &&
    Date.parse(row.finished_at) > Date.parse(check.finished_at);
  return { state: stateOf(row), stale: later };
}

// Check ids this process has handled, so a check told twice (interrupted, then finishing) is sent once.
const REMEMBERED_CHECKS = 1000;

/** Sends status changes to the configured webhooks. */
export class StatusNotifier {
  readonly #pending = new Set<Promise<void>>();
  readonly #handled = new Set<number>();
  /** The last status change under way: the next one is sent after it, so receivers see them in order. */
  #last: Promise<void> = Promise.resolve();

  constructor(private readonly q: Queryable, private readonly options: NotifierOptions) {}

  /**
   * Told of every full check this instance recorded or closed (failed without
   * a scan); returns at once (delivery is in the background).
   */
  checkRecorded(check: CheckRecord): void {
    if (this.options.urls.length === 0) return;
    if (check.scope_user_id !== null || (check.outcome !== "success" && check.outcome !== "failure")) return;
    if (this.#handled.has(check.id)) return;
    this.#handled.add(check.id);
    if (this.#handled.size > REMEMBERED_CHECKS) this.#handled.delete(this.#handled.values().next().value!);
    const work = this.#last.then(() => this.#notify(check));
    this.#last = work.catch(() => {});
    this.#track(work);
  }

  /** POSTs any event (a `text` for chat tools plus fields) to every URL, in the background. */
  announce<E extends OutgoingEvent>(event: E): void {
    if (this.options.urls.length === 0) return;
    this.#track(Promise.all(this.options.urls.map((url) => this.#deliver(url, event))).then(() => {}));
  }

  /** Resolves once the deliveries under way are done, or after `withinMs`. */
  async settled(withinMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([...this.#pending]),
      new Promise((resolve) => timer = setTimeout(resolve, withinMs)),
    ]);
    clearTimeout(timer);
  }

  #track(work: Promise<void>) {
    const tracked = work.catch((err) => log("error", "status notification failed", errorFields(err)))
      .finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  async #notify(check: CheckRecord): Promise<void> {
    const { state: before, stale } = await stateBefore(this.q, check);
    if (stale || !isChange(before, stateOf(check))) return;
    const event = statusChangeEvent(check, before, this.options.publicUrl);
    log("info", "status changed", { from: before, to: event.status_after, check_id: check.id });
    await Promise.all(this.options.urls.map((url) => this.#deliver(url, event)));
  }

  async #deliver(url: URL, event: OutgoingEvent): Promise<void> {
    const delays = this.options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    const body = JSON.stringify(event);
    // A webhook URL's path is its secret (Slack, Teams): logs name the origin only.
    const target = url.origin;
    let reason = "";
    for (let attempt = 0; attempt <= delays.length; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, delays[attempt - 1]));
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json", "User-Agent": "levelguard-notifier" },
          body,
          signal: AbortSignal.timeout(this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
        });
        await res.body?.cancel();
        if (res.ok) {
          this.options.counter?.inc({ result: "sent" });
          if (attempt > 0) {
            log("info", "status notification sent after retrying", { target, attempts: attempt + 1 });
          }
          return;
        }
        reason = `HTTP ${res.status}`;
        // The receiver refuses this request as such: sending it again cannot help.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) break;
      } catch (err) {
        reason = err instanceof Error && err.name === "TimeoutError"
          ? "timed out"
          : String((err as Error).message);
      }
    }
    this.options.counter?.inc({ result: "failed" });
    log("warn", "status notification not delivered", {
      target,
      reason,
      event: event.event,
      check_id: event.check_id,
    });
  }
}
